// Start-up of a bare-metal Cortex-M4 image for QEMU's mps2-an386: the vector
// table, and a reset handler that turns the FPU on (the image is built for
// fpv4-sp-d16) before newlib's semihosting start-up (_start) runs main().
#include <stdint.h>

extern uint32_t __stack_top;
extern void _start(void);

static void Hang(void) {
  while (1) {
  }
}

void Reset_Handler(void) {
  // CPACR: full access to coprocessors 10 and 11 (the FPU).
  *(volatile uint32_t*)0xE000ED88 |= 0xFu << 20;
  __asm volatile("dsb\n\tisb");
  _start();
  Hang();
}

__attribute__((section(".vectors"), used)) static void (*const kVectors[16])(void) = {
    (void (*)(void))(&__stack_top),  // initial stack pointer
    Reset_Handler,                    // reset
    Hang, Hang, Hang, Hang, Hang,     // NMI, HardFault, MemManage, BusFault, UsageFault
    0, 0, 0, 0,                       // reserved
    Hang, Hang, 0, Hang, Hang,        // SVC, DebugMon, reserved, PendSV, SysTick
};
