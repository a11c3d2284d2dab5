/*
 * counter-guest: a bare-metal test guest for vmupdate's integration tests.
 *
 * It proves "the VM was not rebooted, it kept running, its RAM is intact"
 * across a save/restore that keeps the guest RAM in a file:
 *   - a boot id that differs on every boot,
 *   - a RAM region at 16 MiB filled with pseudo-random data and checksummed,
 *   - a tick counter in RAM printed once per RTC second with the checksum.
 *
 * Output on COM1, one line per event (see README.md):
 *   VMUGUEST boot id=<16 hex>
 *   VMUGUEST filled mib=<N> sum=<16 hex>
 *   VMUGUEST tick=<n> id=<16 hex> sum=<16 hex>
 *   VMUGUEST fault                       (CPU exception; the guest stops)
 *
 * Multiboot command line options: fill=<MiB> (default 32), check=<MiB>
 * (MiB re-summed on every tick, default: the whole region).
 */
#include <stddef.h>
#include <stdint.h>

#define REGION_BASE 0x01000000u /* 16 MiB: well above the kernel and the multiboot data */
#define MIB 0x100000u
#define COM1 0x3F8
#define CMDLINE_MAX 256

/* GCC may emit calls to these even in freestanding code (struct copies). */
void *memcpy(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    char *d = dst;
    while (n--)
        *d++ = (char)c;
    return dst;
}

/* ---- port I/O ---------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

/* ---- serial output ------------------------------------------------------ */

static void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no UART interrupts: output is polled */
    outb(COM1 + 3, 0x80); /* DLAB on to set the divisor */
    outb(COM1 + 0, 0x01); /* divisor 1 = 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1, DLAB off */
    outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR + RTS */
}

static void putc_serial(char c)
{
    while (!(inb(COM1 + 5) & 0x20)) /* wait for an empty transmit register */
        ;
    outb(COM1, (uint8_t)c);
}

static void puts_serial(const char *s)
{
    while (*s)
        putc_serial(*s++);
}

static void put_hex64(uint64_t v)
{
    for (int shift = 60; shift >= 0; shift -= 4)
        putc_serial("0123456789abcdef"[(v >> shift) & 0xF]);
}

static void put_dec(uint32_t v)
{
    char buf[11];
    int i = 0;
    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        putc_serial(buf[--i]);
}

/* Called from fault_stub in boot.S. */
void guest_fault(void)
{
    puts_serial("VMUGUEST fault\n");
}

/* ---- CMOS real-time clock ----------------------------------------------- */

static uint8_t cmos_read(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

struct rtc_time {
    uint8_t sec, min, hour, day, mon, year;
};

static void rtc_read_raw(struct rtc_time *t)
{
    /* Registers are only consistent while no update is in progress. */
    while (cmos_read(0x0A) & 0x80)
        ;
    t->sec = cmos_read(0x00);
    t->min = cmos_read(0x02);
    t->hour = cmos_read(0x04);
    t->day = cmos_read(0x07);
    t->mon = cmos_read(0x08);
    t->year = cmos_read(0x09);
}

static uint8_t bcd(uint8_t v)
{
    return (uint8_t)((v >> 4) * 10 + (v & 0x0F));
}

/* Reads until two consecutive reads agree: an update may start right after
 * the update-in-progress check. Converts BCD (register B bit 2 clear). */
static void rtc_read(struct rtc_time *t)
{
    struct rtc_time a, b;
    rtc_read_raw(&b);
    do {
        a = b;
        rtc_read_raw(&b);
    } while (a.sec != b.sec || a.min != b.min || a.hour != b.hour || a.day != b.day ||
             a.mon != b.mon || a.year != b.year);
    if (!(cmos_read(0x0B) & 0x04)) {
        b.sec = bcd(b.sec);
        b.min = bcd(b.min);
        b.hour = (uint8_t)(bcd(b.hour & 0x7F) | (b.hour & 0x80)); /* keep 12h PM bit */
        b.day = bcd(b.day);
        b.mon = bcd(b.mon);
        b.year = bcd(b.year);
    }
    *t = b;
}

/* ---- interrupts: only to sleep in hlt between RTC seconds ---------------- */

extern void irq_stub(void);
extern void fault_stub(void);

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t zero, type;
    uint16_t off_hi;
} __attribute__((packed));

static struct idt_gate idt[48];

static void set_gate(int n, void (*fn)(void))
{
    uint32_t a = (uint32_t)(uintptr_t)fn;
    idt[n].off_lo = (uint16_t)a;
    idt[n].sel = 0x08;   /* code segment from boot.S's GDT */
    idt[n].zero = 0;
    idt[n].type = 0x8E;  /* present, ring 0, 32-bit interrupt gate */
    idt[n].off_hi = (uint16_t)(a >> 16);
}

static void interrupts_init(void)
{
    for (int i = 0; i < 32; i++)
        set_gate(i, fault_stub);
    for (int i = 32; i < 48; i++)
        set_gate(i, irq_stub);
    struct {
        uint16_t limit;
        uint32_t base;
    } __attribute__((packed)) desc = {sizeof(idt) - 1, (uint32_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(desc) : "memory");

    /* Remap the PICs to vectors 0x20-0x2f (away from CPU exceptions), then
     * mask everything except the cascade (IRQ 2) and the RTC (IRQ 8). */
    outb(0x20, 0x11);
    outb(0xA0, 0x11);
    outb(0x21, 0x20);
    outb(0xA1, 0x28);
    outb(0x21, 0x04);
    outb(0xA1, 0x02);
    outb(0x21, 0x01);
    outb(0xA1, 0x01);
    outb(0x21, 0xFB);
    outb(0xA1, 0xFE);

    /* RTC update-ended interrupt (register B bit 4): one IRQ per second. */
    outb(0x70, 0x0B);
    uint8_t b = inb(0x71);
    outb(0x70, 0x0B);
    outb(0x71, (uint8_t)(b | 0x10));
    cmos_read(0x0C); /* clear pending flags so the line can fire */
}

/* Sleep until the next interrupt. "sti; hlt" is atomic (sti's one-instruction
 * interrupt shadow), so a wakeup cannot slip in between. */
static void sleep_until_irq(void)
{
    __asm__ volatile("sti; hlt; cli" : : : "memory");
}

/* ---- the memory region --------------------------------------------------- */

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* splitmix64 finaliser: spreads the few varying bits of TSC and time. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* FNV-1a-64 over 64-bit words: xor and multiply by an odd prime are both
 * bijective, so changing any single word always changes the result. */
static uint64_t region_sum(uint32_t mib)
{
    const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)REGION_BASE;
    uint32_t words = mib * (MIB / 8);
    uint64_t h = 0xCBF29CE484222325ull;
    for (uint32_t i = 0; i < words; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

static void region_fill(uint32_t mib, uint64_t seed)
{
    uint64_t *p = (uint64_t *)(uintptr_t)REGION_BASE;
    uint32_t words = mib * (MIB / 8);
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull; /* xorshift must not start at 0 */
    for (uint32_t i = 0; i < words; i++)
        p[i] = xorshift64(&s);
}

/* ---- multiboot ------------------------------------------------------------ */

struct multiboot_info {
    uint32_t flags, mem_lower, mem_upper, boot_device, cmdline;
};

/* Value of "key=<decimal>" when it starts a word of the command line.
 * QEMU passes "<kernel path> <append>", so the path is just another word. */
static int cmdline_uint(const char *cl, const char *key, uint32_t *out)
{
    for (const char *w = cl; *w; w++) {
        if (w != cl && w[-1] != ' ')
            continue;
        const char *k = key, *c = w;
        while (*k && *c == *k)
            k++, c++;
        if (*k || *c < '0' || *c > '9')
            continue;
        uint32_t v = 0;
        while (*c >= '0' && *c <= '9' && v < 100000000u)
            v = v * 10 + (uint32_t)(*c++ - '0');
        *out = v;
        return 1;
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

/* The tick counter lives in guest RAM on purpose: a restore that lost or
 * reset RAM would show up as a counter that restarts. */
static volatile uint32_t tick;

void kmain(uint32_t magic, const struct multiboot_info *mbi)
{
    static char cmdline[CMDLINE_MAX];
    serial_init();

    /* Copy the command line first: it lives in RAM QEMU picked for it. */
    if (magic == 0x2BADB002 && (mbi->flags & 0x4)) {
        const char *src = (const char *)(uintptr_t)mbi->cmdline;
        for (size_t i = 0; i + 1 < CMDLINE_MAX && src[i]; i++)
            cmdline[i] = src[i];
    }

    struct rtc_time t;
    rtc_read(&t);
    uint64_t when = ((uint64_t)t.year << 40) | ((uint64_t)t.mon << 32) | ((uint32_t)t.day << 24) |
                    ((uint32_t)t.hour << 16) | ((uint32_t)t.min << 8) | t.sec;
    uint64_t id = mix64(rdtsc() ^ mix64(when));
    puts_serial("VMUGUEST boot id=");
    put_hex64(id);
    putc_serial('\n');

    /* Usable RAM ends at 1 MiB + mem_upper KiB; the region must fit between
     * 16 MiB and that end, and below 4 GiB (paging is off). */
    uint64_t ram_end = 0;
    if (magic == 0x2BADB002 && (mbi->flags & 0x1))
        ram_end = MIB + (uint64_t)mbi->mem_upper * 1024;
    if (ram_end > 0x100000000ull)
        ram_end = 0x100000000ull;
    uint32_t avail_mib = ram_end > REGION_BASE ? (uint32_t)((ram_end - REGION_BASE) / MIB) : 0;

    uint32_t fill_mib = 32, check_mib;
    cmdline_uint(cmdline, "fill=", &fill_mib);
    if (fill_mib > avail_mib)
        fill_mib = avail_mib;
    if (!cmdline_uint(cmdline, "check=", &check_mib) || check_mib > fill_mib)
        check_mib = fill_mib;

    region_fill(fill_mib, id);
    puts_serial("VMUGUEST filled mib=");
    put_dec(fill_mib);
    puts_serial(" sum=");
    put_hex64(region_sum(fill_mib));
    putc_serial('\n');

    /* Tick 1 is the first second change after the fill, however long it took. */
    interrupts_init();
    rtc_read(&t);
    uint8_t last_sec = t.sec;
    for (;;) {
        rtc_read(&t);
        if (t.sec == last_sec) {
            sleep_until_irq();
            continue;
        }
        last_sec = t.sec;
        tick = tick + 1;
        uint64_t sum = region_sum(check_mib);
        puts_serial("VMUGUEST tick=");
        put_dec(tick);
        puts_serial(" id=");
        put_hex64(id);
        puts_serial(" sum=");
        put_hex64(sum);
        putc_serial('\n');
    }
}
