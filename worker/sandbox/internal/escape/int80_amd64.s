//go:build linux

#include "textflag.h"

// func int80(trap, a1, a2, a3 uintptr) (r uintptr)
//
// Enters the kernel through the i386 compat gate (int $0x80) from 64-bit
// code. The kernel sees AUDIT_ARCH_I386 and the i386 syscall table. R12-R15
// are saved because some kernels return from the compat gate with r8-r15
// cleared.
TEXT ·int80(SB),NOSPLIT,$32-40
	MOVQ	R12, 0(SP)
	MOVQ	R13, 8(SP)
	MOVQ	R14, 16(SP)
	MOVQ	R15, 24(SP)
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), BX
	MOVQ	a2+16(FP), CX
	MOVQ	a3+24(FP), DX
	INT	$0x80
	MOVQ	0(SP), R12
	MOVQ	8(SP), R13
	MOVQ	16(SP), R14
	MOVQ	24(SP), R15
	MOVQ	AX, r+32(FP)
	RET
