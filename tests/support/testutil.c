/* Helpers shared by the cmocka tests (testutil.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>

#include "testutil.h"

size_t tu_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *s = hex; *s != '\0'; s++) {
        int v;
        if (*s == ' ') {
            continue;
        } else if (*s >= '0' && *s <= '9') {
            v = *s - '0';
        } else if (*s >= 'a' && *s <= 'f') {
            v = *s - 'a' + 10;
        } else if (*s >= 'A' && *s <= 'F') {
            v = *s - 'A' + 10;
        } else {
            print_error("bad hex character '%c' in \"%s\"\n", *s, hex);
            fail();
            return 0;
        }
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)((hi << 4) | v);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1); /* odd number of digits */
    return n;
}

int tu_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}
