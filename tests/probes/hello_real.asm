; Probe: real-mode entry at 0x7c00. Prints a line on COM1 and exits with 7
; through the debug-exit port.
bits 16
org 0x7c00
  mov si, msg
.next:
  lodsb
  test al, al
  jz .done
  mov dx, 0x3f8
  out dx, al
  jmp .next
.done:
  mov dx, 0x501
  mov al, 7
  out dx, al
  hlt
msg: db "hello from real mode", 10, 0
