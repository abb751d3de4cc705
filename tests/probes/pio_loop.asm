; Probe for the PIO exit benchmark: prints 'S', performs 100000 OUTs to the
; unmapped port 0x80 (each one a full exit to the VMM and back), prints 'E'
; and exits with status 0.
bits 16
org 0x7c00
  mov dx, 0x3f8
  mov al, 'S'
  out dx, al
  mov ecx, 100000
  mov dx, 0x80
.loop:
  out dx, al
  dec ecx
  jnz .loop
  mov dx, 0x3f8
  mov al, 'E'
  out dx, al
  mov dx, 0x501
  xor al, al
  out dx, al
  hlt
