; Probe: 32-bit protected-mode entry (load/entry 0x100000, mode=protected).
; Prints a line and exits with 0x32.
bits 32
org 0x100000
  mov esi, msg
.next:
  lodsb
  test al, al
  jz .done
  mov dx, 0x3f8
  out dx, al
  jmp .next
.done:
  mov dx, 0x501
  mov al, 0x32
  out dx, al
  hlt
msg: db "hello from protected mode", 10, 0
