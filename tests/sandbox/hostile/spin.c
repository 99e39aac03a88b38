#define _GNU_SOURCE
/* An endless loop: the timeout must kill it. */
#include "hostile.h"

int main(void)
{
    volatile unsigned long n = 0;
    for (;;)
        n++;
    return escaped("loop ended");
}
