/* Word-at-a-time tests for the common case of plain ASCII strings. Private
 * to the core (utf8.c, topic.c). */
#ifndef MQTTC_UTF8_FAST_H
#define MQTTC_UTF8_FAST_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define MQTTC_ONES 0x0101010101010101ull
#define MQTTC_HIGHS 0x8080808080808080ull
/* Non-zero when some byte of x is 0 (exact for the "any" question). */
#define MQTTC_HASZERO(x) (((x)-MQTTC_ONES) & ~(x)&MQTTC_HIGHS)

static inline uint64_t mqttc_word_at(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8); /* unaligned load, one instruction on x86-64 and ARMv8 */
    return v;
}

/* True when the eight bytes are ASCII, none is NUL, and, if `also` is not 0,
 * none is '+' or '#' (topic names). */
static inline bool mqttc_word_ascii(uint64_t v, int also)
{
    uint64_t bad = (v & MQTTC_HIGHS) | MQTTC_HASZERO(v);
    if (also) {
        bad |= MQTTC_HASZERO(v ^ (MQTTC_ONES * '+')) | MQTTC_HASZERO(v ^ (MQTTC_ONES * '#'));
    }
    return bad == 0;
}

#endif
