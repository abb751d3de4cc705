; Probe: 64-bit long-mode entry (load/entry 0x100000, mode=long). Prints a
; line, writes through the identity map above 1 GiB, and exits with 0x64.
bits 64
org 0x100000
  mov rsi, msg
.next:
  lodsb
  test al, al
  jz .done
  mov dx, 0x3f8
  out dx, al
  jmp .next
.done:
  mov rax, 0x4000_0000          ; 1 GiB: only reachable through the page tables
  mov dword [rax], 0x600dc0de
  mov dx, 0x501
  mov al, 0x64
  out dx, al
  hlt
msg: db "hello from long mode", 10, 0
