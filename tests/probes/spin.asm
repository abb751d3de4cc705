; Probe: prints '.' on COM1 about every 0.2 s (ring-0 emulated delay loop)
; forever, for pause/resume tests. The byte at 0x600 counts the marks.
bits 16
org 0x7c00
  xor ax, ax
  mov ds, ax
  mov byte [0x600], 0
.mark:
  inc byte [0x600]
  mov dx, 0x3f8
  mov al, '.'
  out dx, al
  mov ecx, 100000
.delay:
  dec ecx
  jnz .delay
  jmp .mark
