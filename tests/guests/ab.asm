; ab.img: the classic "a-b" migration test guest, one 512-byte boot sector.
;
; Boots like any BIOS boot sector (loaded at 0x7c00, started in real mode),
; so it runs under godwit and under QEMU + SeaBIOS alike. It enables A20,
; switches to 32-bit protected mode (flat segments, no paging, interrupts
; off) and then, forever:
;
;   for page in [0, pages): increment the byte at 1 MiB + page * 4 KiB
;                           (then spin `delay` iterations)
;   write 'B' to the UART (port 0x3F8)
;
; 'A' is written once when the loop starts. Under godwit (testdev page
; present) a range that does not fit in RAM prints "FAIL ab.pages runs past
; the end of RAM" and exits with status 2. With `once` = 1 the guest stops
; after one pass in `cli; hlt` (halted for good: with interrupts off nothing
; wakes it, which is the intended idle state).
;
; Because every pass walks the pages in order, a memory dump at any instant
; holds counters k for pages [0, b) and k-1 for [b, pages) (mod 256): the
; invariant tools/abcheck verifies after a migration.
;
; All of this runs in ring 0, which PVM hosts emulate (~1.3 M instructions/s):
; the per-page loop is three instructions (inc, add, loop).

bits 16
org 0x7c00

%include "param_table.inc"

AB_BASE   equ 0x100000          ; first page of the a-b range (1 MiB)
PAGE_SIZE equ 4096
UART      equ 0x3f8
DEBUG_EXIT_PORT equ 0x501
TESTDEV_MAGIC   equ 0xd0000010
TESTDEV_RAM_MIB equ 0xd000000c
TESTDEV_MAGIC_VALUE equ 0x54574447
CODE32    equ 0x08
DATA32    equ 0x10

start:
    cli
    cld
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00

    ; Fast A20 through the system control port; skipped when already on
    ; (a port nobody decodes reads 0xFF and is left alone).
    in al, 0x92
    test al, 2
    jnz .a20_on
    or al, 2
    and al, 0xfe                ; bit 0 would reset the machine
    out 0x92, al
.a20_on:
    lgdt [gdt_descriptor]
    mov eax, cr0
    or al, 1
    mov cr0, eax
    jmp CODE32:protected_mode

bits 32
protected_mode:
    mov ax, DATA32
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov esp, 0x7c00

    ; Under godwit (testdev present), refuse a range that runs past RAM
    ; rather than hammering unbacked addresses.
    cmp dword [TESTDEV_MAGIC], TESTDEV_MAGIC_VALUE
    jne .range_ok
    mov eax, [param_pages]
    add eax, 255 + 256                  ; 1 MiB below the range, rounded up
    shr eax, 8                          ; MiB needed
    cmp eax, [TESTDEV_RAM_MIB]
    jbe .range_ok
    mov esi, text_too_many_pages
    mov dx, UART
.print:
    lodsb
    test al, al
    jz .fail_exit
    out dx, al
    jmp .print
.fail_exit:
    mov al, 2
    mov dx, DEBUG_EXIT_PORT
    out dx, al
    jmp pass.idle
.range_ok:
    mov dx, UART
    mov al, 'A'
    out dx, al

    mov ebp, [param_delay]
pass:
    mov edi, AB_BASE
    mov ecx, [param_pages]
    jecxz .pass_done
    test ebp, ebp
    jnz .paced_page
.page:                          ; hot loop: keep it three instructions
    inc byte [edi]
    add edi, PAGE_SIZE
    loop .page
    jmp .pass_done
.paced_page:
    inc byte [edi]
    add edi, PAGE_SIZE
    mov ebx, ebp
.spin:
    dec ebx
    jnz .spin
    loop .paced_page
.pass_done:
    mov al, 'B'
    out dx, al
    cmp dword [param_once], 0
    je pass
.idle:
    cli
    hlt
    jmp .idle

text_too_many_pages: db "FAIL ab.pages runs past the end of RAM", 10, 0

align 8
gdt:
    dq 0
    dq 0x00cf9a000000ffff       ; 0x08: 32-bit code, base 0, limit 4 GiB
    dq 0x00cf92000000ffff       ; 0x10: 32-bit data, base 0, limit 4 GiB
gdt_end:
gdt_descriptor:
    dw gdt_end - gdt - 1
    dd gdt

PARAM_TABLE_BEGIN "ab", 3
PARAM_ENTRY param_pages, "pages", 1024
PARAM_ENTRY param_delay, "delay", 0
PARAM_ENTRY param_once,  "once",  0
PARAM_TABLE_END 3

    times 510 - ($ - $$) db 0
    dw 0xaa55
