; ab-ring3.img: the a-b dirtier run from ring 3 (native speed on PVM hosts).
;
; Ring 0 (boot16.inc, kernel64.inc) enters 64-bit long mode with identity
; paging (every page user-writable), a GDT with user segments, a TSS and an
; IDT whose exception handlers report "FAIL exception ..." on the UART and
; exit with status 3. Only the BSP runs; interrupts stay off. It then drops
; to ring 3, which forever:
;
;   for page in [0, pages): increment the byte at 1 MiB + page * 4 KiB
;                           (then spin `delay` iterations)
;   write 'B' to the testdev console register (0xD0000000)
;
; 'A' is written once when ring 3 starts. A range that does not fit in RAM
; (or a platform without the testdev page) prints "FAIL ..." on the UART and
; exits with status 2. With `once` = 1 the guest stops
; after one pass: ring 3 executes `hlt` at user_halt, which faults, and the
; ring-0 handler halts the vCPU for good (interrupts off).
;
; The parameter table is named "ab" like ab.img's, so the same
; --guest-param ab.pages=N works for both images.

org 0x7c00
%include "layout.inc"

AB_BASE   equ 0x100000
PAGE_SIZE equ 4096

%macro GUEST_PARAMS 0
  PARAM_TABLE_BEGIN "ab", 3
  PARAM_ENTRY param_pages, "pages", 1024
  PARAM_ENTRY param_delay, "delay", 0
  PARAM_ENTRY param_once,  "once",  0
  PARAM_TABLE_END 3
%endmacro

%include "boot16.inc"
%include "kernel64.inc"
%include "console.inc"

bits 64
guest_bsp_main:
    mov eax, TESTDEV_BASE
    cmp dword [rax + TESTDEV_MAGIC], TESTDEV_MAGIC_VALUE
    mov rsi, text_no_testdev
    jne setup_fail
    mov ecx, [param_pages]
    add ecx, 255 + 256                  ; 1 MiB below the range, rounded up
    shr ecx, 8                          ; MiB needed
    cmp ecx, [rax + TESTDEV_RAM_MIB]
    mov rsi, text_too_many_pages
    ja setup_fail
    mov rdi, ab_user_loop
    lea rsi, [rbx + PC_USTACK_TOP]
    mov edx, 0x2                        ; interrupts off: nothing to take
    jmp enter_ring3

guest_ap_main:                          ; never started; halt if one appears
    cli
    hlt
    jmp guest_ap_main

; ---- ring 3 ----
ab_user_loop:
    mov r8d, TESTDEV_BASE + TESTDEV_CONSOLE
    mov dword [r8], 'A'
    mov ebp, [param_delay]
.pass:
    mov edi, AB_BASE
    mov ecx, [param_pages]
    test ecx, ecx
    jz .pass_done
.page:
    inc byte [rdi]
    add rdi, PAGE_SIZE
    mov edx, ebp
.spin:
    sub edx, 1
    jnc .spin                           ; runs delay + 1 times: cheap natively
    dec ecx
    jnz .page
.pass_done:
    mov dword [r8], 'B'
    cmp dword [param_once], 0
    je .pass
    jmp user_halt

text_no_testdev:     db "no godwit testdev page at 0xd0000000", 0
text_too_many_pages: db "ab.pages runs past the end of RAM", 0

%include "tables.inc"
