; Probe: loads an empty IDT and raises an exception: a triple fault, which
; godwit must report (exit status 125, registers in the log), never hang.
bits 16
org 0x7c00
  mov dx, 0x3f8
  mov al, '!'
  out dx, al
  lidt [idt]
  ud2
idt: dw 0
     dd 0
