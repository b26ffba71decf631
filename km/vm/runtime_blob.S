/* Embeds the assembled guest runtime (runtime/km_runtime.S) into km. */
	.section .rodata
	.balign 4096
	.globl km_runtime_start, km_runtime_end
km_runtime_start:
	.incbin KM_RUNTIME_BIN
km_runtime_end:
	.section .note.GNU-stack,"",@progbits
