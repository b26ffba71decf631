/* Embeds the guest's vDSO image (runtime/vdso/, built as a shared object) into km. */
	.section .rodata
	.balign 4096
	.globl km_vdso_image_start, km_vdso_image_end
km_vdso_image_start:
	.incbin KM_VDSO_SO
km_vdso_image_end:
	.section .note.GNU-stack,"",@progbits
