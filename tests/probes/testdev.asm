; Probe: reads the testdev registers from ring 0 (in protected mode, entry
; 0x100000) and reports them: "vcpus=N ram=M" via the testdev console
; register, then exits with the magic's low byte (0x47) via the exit register.
bits 32
org 0x100000
  mov ebx, 0xd0000000
  mov esi, msg
  call puts
  mov eax, [ebx + 8]
  call putdec
  mov esi, msg2
  call puts
  mov eax, [ebx + 0xc]
  call putdec
  mov al, 10
  mov [ebx], eax
  mov eax, [ebx + 0x10]
  and eax, 0xff
  mov [ebx + 4], eax
  hlt
puts:
  lodsb
  test al, al
  jz .r
  movzx eax, al
  mov [ebx], eax
  jmp puts
.r: ret
putdec:                       ; eax -> decimal on the console
  mov ecx, 10
  xor edi, edi
.d: xor edx, edx
  div ecx
  push edx
  inc edi
  test eax, eax
  jnz .d
.o: pop eax
  add eax, '0'
  mov [ebx], eax
  dec edi
  jnz .o
  ret
msg: db "vcpus=", 0
msg2: db " ram=", 0
