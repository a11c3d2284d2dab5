/*
 * Entry point of the counter test guest (multiboot v1, 32-bit protected mode).
 *
 * QEMU's -kernel loader recognises the multiboot header, loads this ELF32 at
 * its physical addresses and jumps to _start with EAX = multiboot magic and
 * EBX = physical address of the multiboot info structure. Paging is off, so
 * every address below 4 GiB is reachable directly.
 */

.set MB_MAGIC, 0x1BADB002
/* bit 0: align modules (none are used), bit 1: we want mem_lower/mem_upper.
 * Bit 16 is clear: QEMU then takes the load addresses from the ELF headers. */
.set MB_FLAGS, 0x00000003

.section .multiboot, "a"
.align 4
.long MB_MAGIC
.long MB_FLAGS
.long -(MB_MAGIC + MB_FLAGS)

.section .bss
.align 16
stack_bottom:
.skip 16384
stack_top:

.section .data
.align 8
/* Flat 4 GiB code (0x08) and data (0x10) segments. Multiboot leaves GDTR
 * undefined, and the IDT gates must name a code selector we know. */
gdt:
.quad 0x0000000000000000
.quad 0x00CF9A000000FFFF
.quad 0x00CF92000000FFFF
gdt_end:
gdt_desc:
.word gdt_end - gdt - 1
.long gdt

.section .text
.global _start
_start:
    cli
    mov $stack_top, %esp
    lgdt gdt_desc
    ljmp $0x08, $1f
1:  mov $0x10, %cx
    mov %cx, %ds
    mov %cx, %es
    mov %cx, %fs
    mov %cx, %gs
    mov %cx, %ss
    push %ebx               /* multiboot info */
    push %eax               /* multiboot magic */
    call kmain
2:  cli
    hlt
    jmp 2b

/*
 * Hardware interrupts (PIC remapped to vectors 0x20-0x2f). Only the RTC
 * update-ended interrupt (IRQ 8) is unmasked; its sole job is to wake the
 * main loop from hlt so the guest does not spin a host CPU at 100% under TCG.
 * Reading RTC register C re-arms the RTC interrupt line. The main loop only
 * touches the CMOS index port with interrupts off, so clobbering it is safe.
 */
.global irq_stub
irq_stub:
    push %eax
    mov $0x0C, %al
    outb %al, $0x70
    inb $0x71, %al
    mov $0x20, %al
    outb %al, $0xA0         /* EOI to slave PIC (a no-op if nothing in service) */
    outb %al, $0x20         /* EOI to master PIC */
    pop %eax
    iret

/* CPU exceptions: report and stop instead of triple-faulting into a reboot,
 * which the tests would misread as "the VM was restarted". */
.global fault_stub
fault_stub:
    cli
    call guest_fault
3:  hlt
    jmp 3b

.section .note.GNU-stack, "", @progbits
