; memtouch.img: makes `mb` MiB of guest RAM non-zero, then keeps dirtying
; `dirtymb` MiB every `ms` milliseconds, forever. Built for snapshot and
; migration benchmarks that need "most of memory touched" and a steady,
; known dirty rate.
;
; Ring 0 (emulated on PVM hosts, so it only sets up; about 0.1 s here):
;   - long mode as in ab-ring3.img (BSP only, both PICs masked);
;   - maps RAM above 4 GiB: the shared tables map only the low 4 GiB, so
;     page directories for [4 GiB, max(16 GiB, end of RAM)) are built at
;     MT_PD_BASE (2 MiB pages, user-accessible) and hooked into the PDPT;
;   - enables the LAPIC and calibrates the TSC against its timer (KVM's APIC
;     bus runs at 1 GHz), because the TSC rate differs between hosts;
;   - points the #GP gate at memtouch_gp, so ring 3 can sleep: a ring-3
;     `hlt` at memtouch_sleep_hlt faults, and ring 0 arms a one-shot LAPIC
;     timer for rax ns and halts until it fires. An idle guest then costs
;     the host no CPU (a spinning one would take a core from the VMM).
; Ring 3 (native):
;   - writes the first qword of every 4 KiB page of the touched range
;     [16 MiB, 16 MiB + mb MiB), skipping the MMIO hole [3 GiB, 4 GiB) and
;     continuing at 4 GiB; prints "memtouch: touched <mb> MiB in <t> ms";
;   - then once per `ms` ms: re-dirties the next `dirtymb` MiB of that range
;     (a cursor that wraps around), sleeps out the period, and prints
;     "memtouch: pass <k>".
; The qword written to the page at guest address gpa in pass k (the first
; touch is pass 0) is  gpa | ((k + 1) mod 65536) << 48 : never zero, and a
; host can tell which pass wrote it.
;
; Setup failures print "FAIL <reason>" on the UART and exit with status 2.
; docs/guests.md ("memtouch.img") has the parameters and the memory layout.

org 0x7c00
%include "layout.inc"

MT_BASE          equ 0x1000000      ; first touched byte (16 MiB)
MT_BASE_MIB      equ 16
MT_HOLE_START    equ 0xc0000000     ; MMIO hole [3 GiB, 4 GiB): skipped
MT_HOLE_SIZE     equ 0x40000000
MT_LOW_RAM_MIB   equ 3072
MT_PD_BASE       equ 0x100000       ; page directories for RAM above 4 GiB
MT_MIN_MAP_GIB   equ 16             ; map at least [0, 16 GiB)
MT_MAX_MAP_GIB   equ 512            ; one PDPT; PDs end at 0x2fc000
MT_CALIBRATE_TSC equ 100000000      ; TSC cycles timed against the LAPIC (~50 ms)
MT_FALLBACK_MHZ  equ 2100           ; when the LAPIC timer does not count
LAPIC_SVR        equ 0x0f0
LAPIC_LVT_TIMER  equ 0x320
LAPIC_TMICT      equ 0x380
LAPIC_TMCCT      equ 0x390
LAPIC_TDCR       equ 0x3e0
LAPIC_MASKED     equ 1 << 16
GP_VECTOR        equ 13

%macro GUEST_PARAMS 0
  PARAM_TABLE_BEGIN "memtouch", 3
  PARAM_ENTRY param_mb,      "mb",      64   ; MiB to touch
  PARAM_ENTRY param_dirtymb, "dirtymb", 0    ; MiB re-dirtied per pass
  PARAM_ENTRY param_ms,      "ms",      1000 ; pass period
  PARAM_TABLE_END 3
%endmacro

%include "boot16.inc"
%include "kernel64.inc"
%include "console.inc"

bits 64
guest_bsp_main:
    mov r8d, TESTDEV_BASE
    cmp dword [r8 + TESTDEV_MAGIC], TESTDEV_MAGIC_VALUE
    mov rsi, text_no_testdev
    jne setup_fail
    mov rsi, text_bad_ms
    cmp dword [param_ms], 0
    je setup_fail
    mov eax, [param_mb]                 ; 16 MiB + mb must fit in RAM
    add rax, MT_BASE_MIB
    mov ecx, [r8 + TESTDEV_RAM_MIB]
    mov rsi, text_not_enough_ram
    cmp rax, rcx
    ja setup_fail

    mov al, 0xff                        ; both PICs masked: only the LAPIC timer
    out 0x21, al
    out 0xa1, al

    ; Page directories for [4 GiB, 4 GiB + n GiB): n = GiB of RAM above
    ; 4 GiB, rounded up, but at least up to MT_MIN_MAP_GIB.
    mov ecx, [r8 + TESTDEV_RAM_MIB]
    xor eax, eax
    sub ecx, MT_LOW_RAM_MIB
    cmovb ecx, eax                      ; no high RAM
    add ecx, 1023
    shr ecx, 10
    mov eax, MT_MIN_MAP_GIB - 4
    cmp ecx, eax
    cmovb ecx, eax
    mov rsi, text_too_much_ram
    cmp ecx, MT_MAX_MAP_GIB - 4
    ja setup_fail
    mov r9d, ecx                        ; r9 = directories to build
    mov rdi, pdpt + 4 * 8
    mov eax, MT_PD_BASE | PTE_PRESENT | PTE_WRITE | PTE_USER
.pdpt_entry:
    mov [rdi], rax
    add rdi, 8
    add eax, 0x1000
    dec ecx
    jnz .pdpt_entry
    mov rdi, MT_PD_BASE
    mov rax, 0x100000000 | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_LARGE
    mov ecx, r9d
    shl ecx, 9                          ; 512 entries per directory
.pd_entry:
    mov [rdi], rax
    add rdi, 8
    add rax, 0x200000
    dec ecx
    jnz .pd_entry
    mov rax, cr3                        ; flush, to be safe
    mov cr3, rax

    call calibrate_tsc

    ; #GP gate -> memtouch_gp (the ring-3 sleep call).
    mov eax, memtouch_gp
    mov [idt + GP_VECTOR * 16], ax
    shr eax, 16
    mov [idt + GP_VECTOR * 16 + 6], ax

    mov rdi, memtouch_user
    lea rsi, [rbx + PC_USTACK_TOP]
    mov edx, 0x2                        ; interrupts off in ring 3
    jmp enter_ring3

guest_ap_main:                          ; never started; halt if one appears
    cli
    hlt
    jmp guest_ap_main

; calibrate_tsc (ring 0): enables the LAPIC and stores in tsc_mhz the TSC
; cycles per microsecond of LAPIC timer time (divide by 1 on a 1 GHz bus).
; Each end reads the timer count and the TSC back to back, so the emulator's
; latency mostly cancels out over the ~50 ms window.
calibrate_tsc:
    mov edi, LAPIC_BASE
    mov dword [rdi + LAPIC_SVR], 0x100 | SPURIOUS_VECTOR
    mov dword [rdi + 0x080], 0          ; TPR: accept everything
    mov dword [rdi + LAPIC_LVT_TIMER], LAPIC_MASKED | TIMER_VECTOR
    mov dword [rdi + LAPIC_TDCR], 0xb   ; divide by 1
    mov dword [rdi + LAPIC_TMICT], 0xffffffff
    mov r10d, [rdi + LAPIC_TMCCT]
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r11, rax
.wait:
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r11
    cmp rax, MT_CALIBRATE_TSC
    jb .wait
    mov ecx, [rdi + LAPIC_TMCCT]
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r11                        ; TSC cycles
    mov dword [rdi + LAPIC_TMICT], 0    ; stop the timer
    sub r10d, ecx                       ; LAPIC ticks (ns)
    cmp r10d, 1000
    jb .fallback
    imul rax, rax, 1000
    xor edx, edx
    div r10                             ; cycles per us
    test eax, eax
    jz .fallback
    mov [tsc_mhz], eax
    ret
.fallback:
    mov dword [tsc_mhz], MT_FALLBACK_MHZ
    mov dword [tsc_assumed], 1
    ret

; memtouch_gp (ring 0, #GP gate): a ring-3 `hlt` at memtouch_sleep_hlt is a
; sleep request for eax ns (1..2^32-1): arm a one-shot LAPIC timer, halt
; with interrupts on until an interrupt arrives, return after the `hlt`.
; Any other #GP goes to the ordinary report (kernel64.inc's stub).
memtouch_gp:
    push rax
    mov rax, memtouch_sleep_hlt
    cmp [rsp + 16], rax                 ; saved rax, error code, rip
    pop rax
    jne exception_stubs + 16 * GP_VECTOR
    push rdx
    mov edx, LAPIC_BASE
    mov dword [rdx + LAPIC_LVT_TIMER], TIMER_VECTOR ; one-shot, unmasked
    mov dword [rdx + LAPIC_TDCR], 0xb
    mov [rdx + LAPIC_TMICT], eax
    sti
    hlt                                 ; the timer (or a stale tick) wakes us
    cli
    pop rdx
    add rsp, 8                          ; error code
    inc qword [rsp]                     ; rip past the 1-byte hlt
    iretq

; ---- ring 3 ----
; r15 = TSC MHz, r14 = touched pages, r13 = pass, r12 = cursor (page index),
; rbp = next deadline (TSC).
memtouch_user:
    mov r15d, [tsc_mhz]
    mov rsi, text_banner
    call console_puts
    mov eax, [param_mb]
    call console_put_dec
    mov rsi, text_banner_dirty
    call console_puts
    mov eax, [param_dirtymb]
    call console_put_dec
    mov rsi, text_banner_per
    call console_puts
    mov eax, [param_ms]
    call console_put_dec
    mov rsi, text_banner_tsc
    call console_puts
    mov rax, r15
    call console_put_dec
    mov rsi, text_mhz
    cmp dword [tsc_assumed], 0
    je .mhz_measured
    mov rsi, text_mhz_assumed
.mhz_measured:
    call console_puts

    call read_tsc
    mov rbx, rax                        ; start of the touch
    mov r14d, [param_mb]
    shl r14, 8                          ; pages of 4 KiB
    xor r12d, r12d
    xor r13d, r13d
    mov rcx, r14
    call dirty_pages
    call read_tsc
    sub rax, rbx
    xor edx, edx
    mov ecx, 1000
    div rcx
    xor edx, edx
    div r15                             ; ms
    mov rbx, rax
    mov rsi, text_touched
    call console_puts
    mov eax, [param_mb]
    call console_put_dec
    mov rsi, text_touched_in
    call console_puts
    mov rax, rbx
    call console_put_dec
    mov rsi, text_ms
    call console_puts

    mov eax, [param_ms]                 ; period in TSC cycles -> [period_tsc]
    imul rax, r15
    imul rax, rax, 1000
    mov [period_tsc], rax
    call read_tsc
    add rax, [period_tsc]
    mov rbp, rax
    xor r12d, r12d
.pass:
    inc r13
    test r14, r14                       ; mb = 0: nothing to dirty
    jz .sleep
    mov ecx, [param_dirtymb]
    shl rcx, 8
    jz .sleep
    call dirty_pages
.sleep:
    call sleep_until_rbp
    mov rsi, text_pass
    call console_puts
    mov rax, r13
    call console_put_dec
    mov al, 10
    call console_putc
    add rbp, [period_tsc]
    call read_tsc                       ; overran (or was paused): restart
    cmp rax, rbp                        ; the period from now, no catch-up burst
    jb .pass
    mov rbp, rax
    add rbp, [period_tsc]
    jmp .pass

; dirty_pages (ring 3): rcx pages from page index r12 of the touched range,
; wrapping at r14 pages; stamps pass r13. Advances r12.
dirty_pages:
    mov rdx, r13
    inc rdx
    shl rdx, 48                         ; (pass + 1) mod 65536 in bits 48..63
    mov r8d, MT_HOLE_START
    mov r9d, MT_HOLE_SIZE
.page:
    mov rax, r12
    shl rax, 12
    add rax, MT_BASE
    cmp rax, r8
    jb .below_hole
    add rax, r9
.below_hole:
    mov rdi, rax
    or rax, rdx
    mov [rdi], rax
    inc r12
    cmp r12, r14
    jb .no_wrap
    xor r12d, r12d
.no_wrap:
    dec rcx
    jnz .page
    ret

; sleep_until_rbp (ring 3): until the TSC reaches rbp, sleep in ring 0
; (memtouch_gp) for the remaining time; wakes early are simply repeated.
sleep_until_rbp:
    call read_tsc
    cmp rax, rbp
    jae sleep_done
    mov rcx, rbp
    sub rcx, rax                        ; cycles left
    imul rax, rcx, 1000
    xor edx, edx
    div r15                             ; ns left
    mov ecx, 0xffffffff
    cmp rax, rcx
    cmova rax, rcx
    test eax, eax
    jnz memtouch_sleep_hlt
    inc eax
memtouch_sleep_hlt:
    hlt                                 ; #GP -> memtouch_gp sleeps eax ns
    jmp sleep_until_rbp
sleep_done:
    ret

; read_tsc: rax = TSC. Clobbers rdx.
read_tsc:
    rdtsc
    shl rdx, 32
    or rax, rdx
    ret

align 4
tsc_mhz:     dd 0
tsc_assumed: dd 0
align 8
period_tsc:  dq 0

text_no_testdev:     db "no godwit testdev page at 0xd0000000", 0
text_bad_ms:         db "memtouch.ms must be at least 1", 0
text_not_enough_ram: db "not enough RAM: need 16 MiB + memtouch.mb MiB", 0
text_too_much_ram:   db "more RAM than memtouch maps (512 GiB of address space)", 0
text_banner:         db "memtouch: touching ", 0
text_banner_dirty:   db " MiB, then dirtying ", 0
text_banner_per:     db " MiB every ", 0
text_banner_tsc:     db " ms; tsc ", 0
text_mhz:            db " MHz", 10, 0
text_mhz_assumed:    db " MHz (assumed: the LAPIC timer did not count)", 10, 0
text_touched:        db "memtouch: touched ", 0
text_touched_in:     db " MiB in ", 0
text_ms:             db " ms", 10, 0
text_pass:           db "memtouch: pass ", 0

%include "tables.inc"
