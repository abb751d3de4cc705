; Probe: UART input. Prints "ready\n", then polls the line status register and
; echoes every received byte upper-cased; 'q' exits with status 0x11.
bits 16
org 0x7c00
  mov si, ready
.say:
  lodsb
  test al, al
  jz .poll
  mov dx, 0x3f8
  out dx, al
  jmp .say
.poll:
  mov dx, 0x3fd
  in al, dx
  test al, 1
  jz .poll
  mov dx, 0x3f8
  in al, dx
  cmp al, 'q'
  je .quit
  cmp al, 'a'
  jb .echo
  cmp al, 'z'
  ja .echo
  sub al, 0x20
.echo:
  out dx, al
  jmp .poll
.quit:
  mov dx, 0x501
  mov al, 0x11
  out dx, al
  hlt
ready: db "ready", 10, 0
