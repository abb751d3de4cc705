; Probe: resets the machine through the i8042 (0xFE to port 0x64).
bits 16
org 0x7c00
  mov al, 0xfe
  out 0x64, al
  hlt
  jmp $
