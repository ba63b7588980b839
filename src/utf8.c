/* UTF-8 validation for MQTT strings (MQTT-1.5.3, RFC 3629). */
#include <string.h>

#include "mqttc/codec.h"
#include "utf8_fast.h"

int mqttc_utf8_check(const char *s, size_t len)
{
    /* Smallest code point each sequence length may encode: below it is overlong. */
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    if (s == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    /* Topics are mostly ASCII: eight bytes at a time while they are. */
    while (len - i >= 8 && mqttc_word_ascii(mqttc_word_at(p + i), 0)) {
        i += 8;
    }
    while (i < len) {
        uint32_t c = p[i++];
        unsigned n;
        if (c < 0x80) {
            if (c == 0) {
                return MQTTC_ERR_BAD_UTF8; /* MQTT-1.5.3-2 */
            }
            continue;
        }
        /* 0x80..0xC1: stray continuation byte or overlong 2-byte lead;
         * 0xF5..0xFF: would encode above U+10FFFF or are not UTF-8 at all. */
        if (c < 0xC2 || c > 0xF4) {
            return MQTTC_ERR_BAD_UTF8;
        }
        n = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
        if (len - i < n) {
            return MQTTC_ERR_BAD_UTF8; /* truncated */
        }
        c &= 0x3Fu >> n;
        for (unsigned k = 0; k < n; k++) {
            uint32_t b = p[i++];
            if ((b & 0xC0) != 0x80) {
                return MQTTC_ERR_BAD_UTF8;
            }
            c = (c << 6) | (b & 0x3F);
        }
        if (c < min[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            return MQTTC_ERR_BAD_UTF8;
        }
    }
    return 0;
}
