/* core/src/arch/context_x86_64.S - x86-64 SysV context switch and preemption
 * trampoline.  Contract: core/src/arch/context.hpp. */
        .text
        .globl  fiber_asm_begin
        .hidden fiber_asm_begin
fiber_asm_begin:

/* void fiber_ctx_switch(void **save_sp (rdi), void *load_sp (rsi)) */
        .globl  fiber_ctx_switch
        .hidden fiber_ctx_switch
        .type   fiber_ctx_switch, @function
        .p2align 4
fiber_ctx_switch:
        .cfi_startproc
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    %rsi, %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .cfi_endproc
        .size   fiber_ctx_switch, .-fiber_ctx_switch

/* First instructions of a new context: r13 = entry, r12 = arg (ctx_make). */
        .globl  fiber_ctx_start
        .hidden fiber_ctx_start
        .type   fiber_ctx_start, @function
        .p2align 4
fiber_ctx_start:
        .cfi_startproc
        .cfi_undefined rip      /* outermost frame: unwinders stop here */
        movq    %r12, %rdi
        callq   *%r13
        ud2                     /* entry never returns */
        .cfi_endproc
        .size   fiber_ctx_start, .-fiber_ctx_start

/* void fiber_run_clean(void *(*fn)(void *) (rdi), void *arg (rsi), void *f (rdx)):
 * fiber_finish(f, fn(arg)), never returns.  fn is entered with the 512 bytes
 * below the stack pointer zeroed and no register left from the runtime's
 * calls at the fiber's start (every general register but the argument, all
 * xmm registers): those hold TLS addresses - errno's, kept by the inlined
 * finish_prev in a callee-saved register, the KLT's - that the stack scan
 * of a preemption (tls_scan.cpp) would find in registers the fiber's code
 * never writes, or in its frames' unwritten slots, and take for addresses
 * the fiber holds.  Not returning, it need preserve no register. */
        .globl  fiber_run_clean
        .hidden fiber_run_clean
        .type   fiber_run_clean, @function
        .p2align 4
fiber_run_clean:
        .cfi_startproc
        pushq   %rdx            /* f, for fiber_finish; rsp now 16-byte aligned */
        .cfi_adjust_cfa_offset 8
        movq    %rdi, %r11
        movq    %rsi, %rdi
        pxor    %xmm0, %xmm0    /* 32 aligned stores: rep stos costs more at this size */
        movaps  %xmm0, -16(%rsp)
        movaps  %xmm0, -32(%rsp)
        movaps  %xmm0, -48(%rsp)
        movaps  %xmm0, -64(%rsp)
        movaps  %xmm0, -80(%rsp)
        movaps  %xmm0, -96(%rsp)
        movaps  %xmm0, -112(%rsp)
        movaps  %xmm0, -128(%rsp)
        movaps  %xmm0, -144(%rsp)
        movaps  %xmm0, -160(%rsp)
        movaps  %xmm0, -176(%rsp)
        movaps  %xmm0, -192(%rsp)
        movaps  %xmm0, -208(%rsp)
        movaps  %xmm0, -224(%rsp)
        movaps  %xmm0, -240(%rsp)
        movaps  %xmm0, -256(%rsp)
        movaps  %xmm0, -272(%rsp)
        movaps  %xmm0, -288(%rsp)
        movaps  %xmm0, -304(%rsp)
        movaps  %xmm0, -320(%rsp)
        movaps  %xmm0, -336(%rsp)
        movaps  %xmm0, -352(%rsp)
        movaps  %xmm0, -368(%rsp)
        movaps  %xmm0, -384(%rsp)
        movaps  %xmm0, -400(%rsp)
        movaps  %xmm0, -416(%rsp)
        movaps  %xmm0, -432(%rsp)
        movaps  %xmm0, -448(%rsp)
        movaps  %xmm0, -464(%rsp)
        movaps  %xmm0, -480(%rsp)
        movaps  %xmm0, -496(%rsp)
        movaps  %xmm0, -512(%rsp)
        xorl    %eax, %eax
        xorl    %ebx, %ebx
        xorl    %ecx, %ecx
        xorl    %edx, %edx
        xorl    %esi, %esi
        xorl    %ebp, %ebp
        xorl    %r8d, %r8d
        xorl    %r9d, %r9d
        xorl    %r10d, %r10d
        xorl    %r12d, %r12d
        xorl    %r13d, %r13d
        xorl    %r14d, %r14d
        xorl    %r15d, %r15d
        pxor    %xmm1, %xmm1
        pxor    %xmm2, %xmm2
        pxor    %xmm3, %xmm3
        pxor    %xmm4, %xmm4
        pxor    %xmm5, %xmm5
        pxor    %xmm6, %xmm6
        pxor    %xmm7, %xmm7
        pxor    %xmm8, %xmm8
        pxor    %xmm9, %xmm9
        pxor    %xmm10, %xmm10
        pxor    %xmm11, %xmm11
        pxor    %xmm12, %xmm12
        pxor    %xmm13, %xmm13
        pxor    %xmm14, %xmm14
        pxor    %xmm15, %xmm15
        movq    %r11, %rax
        xorl    %r11d, %r11d
        callq   *%rax
        popq    %rdi            /* f */
        .cfi_adjust_cfa_offset -8
        movq    %rax, %rsi
        subq    $8, %rsp        /* aligned for the call */
        .cfi_adjust_cfa_offset 8
        callq   fiber_finish
        ud2
        .cfi_endproc
        .size   fiber_run_clean, .-fiber_run_clean

/* Zeroes [rsp, rbp-40): the trampoline's save area and the gap its 64-byte
 * alignment leaves below the last push.  XSAVE does not write components in
 * their initial state, so their slots would keep stale stack words that the
 * stack scan (tls_scan.cpp) would take for something the interrupted code
 * holds.  Clobbers rax, rcx, rdi (saved by then). */
        .macro  ZERO_SAVE_AREA
        leaq    -40(%rbp), %rcx
        subq    %rsp, %rcx
        shrq    $3, %rcx
        movq    %rsp, %rdi
        xorl    %eax, %eax
        rep stosq
        .endm

/* Entered by a fiber whose interrupted context the tick handler rewrote:
 *   [rsp] = interrupted rip, [rsp+8] = interrupted rsp,
 * with rsp below the interrupted code's red zone.  Preserves everything the
 * interrupted code may have live (general registers, flags, xsave state) and
 * resumes it with iretq, which restores rip, rflags and rsp at once: a plain
 * ret cannot, because the red zone below the interrupted rsp is not ours. */
        .globl  fiber_preempt_trampoline
        .hidden fiber_preempt_trampoline
        .type   fiber_preempt_trampoline, @function
        .p2align 4
fiber_preempt_trampoline:
        .cfi_startproc
        .cfi_def_cfa rsp, 16
        .cfi_offset rip, -16
        pushfq
        .cfi_adjust_cfa_offset 8
        cld                     /* the ABI requires DF=0 at a call */
        pushq   %rax
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %rbp
        .cfi_adjust_cfa_offset 80
        movq    %rsp, %rbp
        .cfi_def_cfa_register rbp
        /* The callee-saved registers too, below rbp (the frame-pointer walk
         * reads [rbp] and [rbp+88]): the C code would preserve them anyway,
         * but only here, in the save area, does the stack scan of
         * tls_scan.cpp see what the interrupted code holds in them. */
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movl    fiber_xsave_size(%rip), %eax
        testl   %eax, %eax
        jz      .Lfxsave
        subq    %rax, %rsp
        andq    $-64, %rsp
        ZERO_SAVE_AREA          /* XRSTOR also needs a zeroed XSAVE header */
        movl    $-1, %eax
        movl    $-1, %edx
        xsave64 (%rsp)
        movq    %rsp, %rdi      /* the save area: fiber_preempt_entry(saved) */
        call    fiber_preempt_entry
        movl    $-1, %eax
        movl    $-1, %edx
        xrstor64 (%rsp)
        jmp     .Lrestore
.Lfxsave:
        subq    $512, %rsp
        andq    $-64, %rsp
        ZERO_SAVE_AREA          /* FXSAVE leaves bytes 416-511 unwritten */
        fxsave64 (%rsp)
        movq    %rsp, %rdi
        call    fiber_preempt_entry
        fxrstor64 (%rsp)
.Lrestore:
        leaq    -40(%rbp), %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        movq    %rbp, %rsp
        .cfi_def_cfa_register rsp
        popq    %rbp
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rax
        .cfi_adjust_cfa_offset -80
        /* Now R = rsp: [R] rflags, [R+8] rip, [R+16] rsp.  Build the iretq
         * frame (rip, cs, rflags, rsp, ss) below R without a register; the
         * flags this clobbers are restored by iretq. */
        subq    $8, %rsp
        movq    $0, (%rsp)
        movw    %ss, (%rsp)     /* R-8:  ss */
        pushq   24(%rsp)        /* R-16: rsp */
        pushq   16(%rsp)        /* R-24: rflags */
        subq    $8, %rsp
        movq    $0, (%rsp)
        movw    %cs, (%rsp)     /* R-32: cs */
        pushq   40(%rsp)        /* R-40: rip */
        iretq
        .cfi_endproc
        .size   fiber_preempt_trampoline, .-fiber_preempt_trampoline

        .globl  fiber_asm_end
        .hidden fiber_asm_end
fiber_asm_end:
        .section .note.GNU-stack,"",@progbits
