; blkbench.img: virtio-blk throughput and IOPS, measured from ring 3.
;
; Ring 0 (boot16.inc, kernel64.inc; emulated on PVM hosts, so it only sets
; up) enters long mode, checks the parameters, finds the first virtio-blk
; device in the device tree (fdt.inc), initialises it with the shared
; transport code (virtio.inc) and one request queue of up to 256 entries in
; its own memory (blkbench_queue.inc), then drops to ring 3 with interrupts
; off. Ring 3 (native speed) keeps `depth` requests of `size` KiB in flight
; until `count` have completed: three descriptors per request (header, data,
; status), completions found by polling the used ring, each completed slot
; reposted at the next sector of a sequential sweep over the first `span`
; MiB of the disk, one QueueNotify per batch of reposts. It reads the TSC
; before the first notify and after the last completion and prints on the
; testdev console
;
;   blkbench size=4 count=20000 depth=16 write=1 span=64 queue=256 tsc=NNN errors=0
;
; then exits through the testdev exit register: 0 when every status byte
; was 0, else 1. Setup failures print "FAIL <reason>" and exit with 2 (the
; platform or the parameters do not fit) or 1 (the device misbehaves).
; docs/guests.md ("blkbench.img") has the parameters and the memory layout.

org 0x7c00
%include "layout.inc"

; The five-entry table does not fit the boot sector; it lives in stage 2
; (the VMM searches the first 64 KiB of the image), so sector 0 carries none.
%macro GUEST_PARAMS 0
%endmacro

%include "boot16.inc"
%include "kernel64.inc"
%include "console.inc"
%include "fdt.inc"
%include "virtio.inc"
%include "virtio_irq.inc"
%include "virtio_blk.inc"
%include "virtio_net.inc"
%include "virtio_rng.inc"
%include "blkbench_queue.inc"
%include "blkbench_user.inc"

bits 64
; guest_bsp_main (ring 0): parameters, RAM, device, then ring 3.
guest_bsp_main:
    mov r8d, TESTDEV_BASE
    cmp dword [r8 + TESTDEV_MAGIC], TESTDEV_MAGIC_VALUE
    mov rsi, text_no_testdev
    jne setup_fail
    mov eax, [param_size]
    test eax, eax
    mov rsi, text_bad_size
    jz setup_fail
    cmp eax, BB_MAX_SIZE_KIB
    ja setup_fail
    mov eax, [param_depth]
    test eax, eax
    mov rsi, text_bad_depth
    jz setup_fail
    cmp eax, BB_MAX_DEPTH
    ja setup_fail
    cmp dword [param_count], 0
    mov rsi, text_bad_count
    je setup_fail
    cmp dword [param_write], 1
    mov rsi, text_bad_write
    ja setup_fail
    mov ecx, [param_span]               ; 1 .. 2^31 / 1024 MiB, and >= size
    test ecx, ecx
    mov rsi, text_bad_span
    jz setup_fail
    cmp ecx, BB_MAX_SPAN_MIB
    ja setup_fail
    shl ecx, 10                         ; KiB
    cmp ecx, [param_size]
    jb setup_fail

    ; Data buffers: BB_DATA + depth * size KiB, below the MMIO hole and in RAM.
    mov eax, [param_depth]
    imul eax, [param_size]              ; KiB (at most 85 * 4096)
    add eax, (BB_DATA >> 10) + 1023
    shr eax, 10                         ; MiB needed
    mov rsi, text_not_enough_ram
    cmp eax, BB_RAM_LIMIT_MIB
    ja setup_fail
    cmp eax, [r8 + TESTDEV_RAM_MIB]
    ja setup_fail

    mov al, 0xff                        ; both PICs masked: no interrupts wanted
    out 0x21, al
    out 0xa1, al
    call blkbench_find_device
    call blkbench_init_device
    mov rdi, blkbench_user              ; r14 (register page) passes through
    lea rsi, [rbx + PC_USTACK_TOP]
    mov edx, 0x2                        ; interrupts off: ring 3 polls
    jmp enter_ring3

guest_ap_main:                          ; never started; halt if one appears
    cli
    hlt
    jmp guest_ap_main

text_no_testdev:     db "no godwit testdev page at 0xd0000000", 0
text_bad_size:       db "blkbench.size must be 1..4096 (KiB)", 0
text_bad_depth:      db "blkbench.depth must be 1..85", 0
text_bad_count:      db "blkbench.count must be at least 1", 0
text_bad_write:      db "blkbench.write must be 0 or 1", 0
text_bad_span:       db "blkbench.span must be 1..4194303 (MiB) and hold one request", 0
text_not_enough_ram: db "not enough RAM: need 16 MiB + depth * size KiB below 3 GiB", 0

; Parameter table "blkbench" (docs/guest-abi.md), 16-byte aligned in stage 2.
align 16
param_table:
    db "GWPARAM", 0
    db "blkbench"                       ; exactly 8 bytes: no NUL needed
    dd 5, 0
    PARAM_ENTRY param_size,  "size",  4     ; KiB per request
    PARAM_ENTRY param_count, "count", 20000 ; requests in all
    PARAM_ENTRY param_depth, "depth", 16    ; requests in flight
    PARAM_ENTRY param_write, "write", 1     ; 1 OUT, 0 IN
    PARAM_ENTRY param_span,  "span",  64    ; MiB of the disk swept
    PARAM_TABLE_END 5

%include "tables.inc"
