; selfcheck.img: the end-to-end self-checking guest (64-bit, SMP).
;
; Ring 0 (emulated on PVM hosts, so kept small): boot16.inc/kernel64.inc
; enter long mode and give every vCPU its own GDT, TSS and kernel stack; this
; file checks the platform, enables x87/SSE/AVX for ring 3 (CR0, CR4, XCR0),
; starts a periodic LAPIC timer (vector 0x20, ~250 Hz; the handler counts
; ticks per vCPU), starts every AP with INIT/SIPI, and drops each vCPU to
; ring 3 with interrupts on. The ring-3 workload is selfcheck_user.inc.
;
; Before starting the APs the BSP tests every virtio-mmio device listed in
; the device tree at 0xE0000 (fdt.inc, virtio*.inc): virtio-blk, -net and
; -rng; a failure prints "FAIL <reason>" and exits with status 1. Without a
; tree or devices nothing changes.
;
; Platform checks (BSP, ring 0) print "FAIL <reason>" on the UART and exit
; with status 2: no testdev page, too many vCPUs, too little RAM for
; 16 MiB + memmb MiB per vCPU, no XSAVE/AVX, an AP that does not start
; within ~5 s (five INIT/SIPI attempts) or reports an unexpected APIC ID.

org 0x7c00
%include "layout.inc"

WORK_BASE           equ 0x1000000   ; workload areas: 16 MiB + index * memmb MiB
WORK_LIMIT_MIB      equ 3072        ; stay below the MMIO hole
TIMER_DIVIDE_16     equ 0x3
TIMER_INITIAL_COUNT equ 250000      ; 1 GHz APIC bus / 16 / 250000 = 250 Hz
AP_RETRY_CYCLES     equ 2100000000  ; TSC cycles (~1 s at 2.1 GHz)
AP_START_ATTEMPTS   equ 5

%macro GUEST_PARAMS 0
  PARAM_TABLE_BEGIN "selfchk", 2   ; "selfcheck" does not fit the 8-byte name field
  PARAM_ENTRY param_rounds, "rounds", 40
  PARAM_ENTRY param_memmb,  "memmb",  16
  PARAM_TABLE_END 2
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

bits 64
guest_bsp_main:
    mov r8d, TESTDEV_BASE
    cmp dword [r8 + TESTDEV_MAGIC], TESTDEV_MAGIC_VALUE
    mov rsi, text_no_testdev
    jne setup_fail
    mov eax, [r8 + TESTDEV_NCPUS]
    mov [cpu_count], eax
    test eax, eax
    mov rsi, text_bad_cpu_count
    jz setup_fail
    cmp eax, MAX_CPUS
    ja setup_fail

    ; RAM: 16 MiB + memmb MiB per vCPU, all below the MMIO hole.
    mov ecx, [param_memmb]
    test ecx, ecx
    mov rsi, text_bad_memmb
    jz setup_fail
    cmp ecx, WORK_LIMIT_MIB
    ja setup_fail
    imul ecx, eax
    add ecx, WORK_BASE >> 20
    cmp ecx, WORK_LIMIT_MIB
    mov rsi, text_not_enough_ram
    ja setup_fail
    cmp ecx, [r8 + TESTDEV_RAM_MIB]
    ja setup_fail

    ; FXSR, SSE, XSAVE, AVX.
    push rbx
    mov eax, 1
    cpuid
    pop rbx
    mov rsi, text_no_avx
    and edx, (1 << 24) | (1 << 25)
    cmp edx, (1 << 24) | (1 << 25)
    jne setup_fail
    and ecx, (1 << 26) | (1 << 28)
    cmp ecx, (1 << 26) | (1 << 28)
    jne setup_fail

    mov rsi, text_banner
    call console_puts
    mov eax, [cpu_count]
    call console_put_dec
    mov rsi, text_banner_vcpus
    call console_puts
    mov eax, [param_memmb]
    call console_put_dec
    mov rsi, text_banner_memmb
    call console_puts
    mov eax, [param_rounds]
    call console_put_dec
    mov rsi, text_banner_rounds
    call console_puts

    call enable_fpu_and_timer
    call virtio_selftest
    call start_application_processors
    jmp drop_to_ring3

guest_ap_main:
    cmp r12d, [expected_ap]
    mov rsi, text_bad_apic_id
    jne setup_fail
    call enable_fpu_and_timer
    mov [ap_started], r12d
    jmp drop_to_ring3

; enable_fpu_and_timer (ring 0, this vCPU): x87/SSE/AVX usable from ring 3,
; LAPIC on with a periodic timer.
enable_fpu_and_timer:
    mov rax, cr0
    and eax, ~((1 << 2) | (1 << 3))     ; EM, TS off
    or eax, (1 << 1) | (1 << 5)         ; MP, NE
    mov cr0, rax
    mov rax, cr4
    or eax, (1 << 9) | (1 << 10) | (1 << 18) ; OSFXSR, OSXMMEXCPT, OSXSAVE
    mov cr4, rax
    xor ecx, ecx
    xor edx, edx
    mov eax, 7                          ; XCR0 = x87 | SSE | AVX
    xsetbv

    mov edi, LAPIC_BASE
    mov dword [rdi + 0x0f0], 0x100 | SPURIOUS_VECTOR ; SVR: software enable
    mov dword [rdi + 0x080], 0                       ; TPR: accept everything
    mov dword [rdi + 0x3e0], TIMER_DIVIDE_16
    mov dword [rdi + 0x320], (1 << 17) | TIMER_VECTOR ; LVT timer: periodic
    mov dword [rdi + 0x380], TIMER_INITIAL_COUNT
    ret

; start_application_processors (BSP): INIT + SIPI to each AP in turn, and
; wait until it reports in, so APs never share the boot path. An AP that has
; not reported within AP_RETRY_CYCLES gets INIT + SIPI again (as a BIOS sends
; two SIPIs); after AP_START_ATTEMPTS the guest gives up.
start_application_processors:
    mov r14d, 1
.next:
    cmp r14d, [cpu_count]
    jae .done
    mov [expected_ap], r14d
    mov r13d, AP_START_ATTEMPTS
.attempt:
    mov edi, LAPIC_BASE
    mov eax, r14d
    shl eax, 24
    mov [rdi + 0x310], eax                ; ICR high: destination APIC ID
    mov dword [rdi + 0x300], 0x4500       ; INIT, level assert
    mov [rdi + 0x310], eax
    mov dword [rdi + 0x300], 0x4600 | (AP_TRAMPOLINE >> 12) ; SIPI
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov r15, rax
.wait:
    cmp [ap_started], r14d
    je .started
    rdtsc
    shl rdx, 32
    or rax, rdx
    sub rax, r15
    mov rcx, AP_RETRY_CYCLES
    cmp rax, rcx
    jb .wait
    dec r13d
    jnz .attempt
    mov rsi, text_ap_timeout
    jmp setup_fail
.started:
    inc r14d
    jmp .next
.done:
    ret

; drop_to_ring3: rbx = per-vCPU block, r12 = index.
drop_to_ring3:
    mov eax, [param_memmb]
    shl rax, 20
    mov [rbx + PC_WORK_SIZE], rax
    imul rax, r12
    add rax, WORK_BASE
    mov [rbx + PC_WORK_BASE], rax
    mov r13, rbx
    mov rdi, user_main
    lea rsi, [rbx + PC_USTACK_TOP]
    mov edx, 0x202                      ; IF on: the timer ticks in ring 3
    jmp enter_ring3

align 4
cpu_count:   dd 0
expected_ap: dd 0
ap_started:  dd 0

text_no_testdev:     db "no godwit testdev page at 0xd0000000", 0
text_bad_cpu_count:  db "testdev reports 0 or more than 32 vcpus", 0
text_bad_memmb:      db "selfcheck.memmb must be 1..3072", 0
text_not_enough_ram: db "not enough RAM: need 16 MiB + memmb MiB per vcpu below 3 GiB", 0
text_no_avx:         db "cpu lacks fxsr/sse/xsave/avx", 0
text_bad_apic_id:    db "an AP started with an unexpected APIC ID (cpuid leaf 1)", 0
text_ap_timeout:     db "an AP did not start after INIT/SIPI", 0
text_banner:         db "selfcheck: ", 0
text_banner_vcpus:   db " vcpus, ", 0
text_banner_memmb:   db " MiB per vcpu, ", 0
text_banner_rounds:  db " rounds", 10, 0

%include "selfcheck_user.inc"
%include "tables.inc"
