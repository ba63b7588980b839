/* Small helpers shared by the cmocka tests. Include <cmocka.h> (with
 * <stdarg.h>, <stddef.h>, <setjmp.h>, <stdint.h> before it) first. */
#ifndef MQTTC_TESTS_TESTUTIL_H
#define MQTTC_TESTS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "mqttc/error.h"

/**
 * Like cmocka's assert_int_equal for mqttc return codes, but a failure names
 * both codes (MQTTC_ERR_...).
 */
#define assert_code(actual, expected)                                                    \
    do {                                                                                 \
        int tu_a_ = (int)(actual), tu_e_ = (int)(expected);                              \
        if (tu_a_ != tu_e_)                                                              \
            fail_msg("%s: got %d (%s), expected %d (%s)", #actual, tu_a_,                \
                     mqttc_errname(tu_a_), tu_e_, mqttc_errname(tu_e_));                 \
    } while (0)

/** Parse a hex vector such as "10 0F 00 04" (spaces ignored) into `out`;
 *  fails the test on a bad digit, an odd count or more than `cap` bytes.
 *  Returns the byte count. */
size_t tu_unhex(const char *hex, uint8_t *out, size_t cap);

/** Descriptors this process has open (/proc/self/fd), or -1. Plain C: no
 *  cmocka needed to call it. */
int tu_open_fds(void);

#endif
