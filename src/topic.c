/* Topic names, topic filters and matching (MQTT-4.7).
 * Bytes of multi-byte UTF-8 sequences are all >= 0x80, so scanning byte by
 * byte for '/', '+' and '#' is safe before the UTF-8 check. */
#include "mqttc/codec.h"
#include "utf8_fast.h"

int mqttc_topic_name_check(const char *s, size_t len)
{
    if (s == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (len == 0 || len > UINT16_MAX) {
        return MQTTC_ERR_BAD_TOPIC;
    }
    /* Plain ASCII words need no further look; the rest byte by byte. */
    while (len >= 8 && mqttc_word_ascii(mqttc_word_at((const unsigned char *)s), 1)) {
        s += 8;
        len -= 8;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+' || s[i] == '#') {
            return MQTTC_ERR_BAD_TOPIC; /* MQTT-3.3.2-2 */
        }
    }
    return mqttc_utf8_check(s, len);
}

int mqttc_topic_filter_check(const char *s, size_t len)
{
    if (s == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (len == 0 || len > UINT16_MAX) {
        return MQTTC_ERR_BAD_FILTER;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c != '+' && c != '#') {
            continue;
        }
        /* A wildcard fills its whole level; '#' must also be the last level. */
        if (i > 0 && s[i - 1] != '/') {
            return MQTTC_ERR_BAD_FILTER;
        }
        if (c == '#' ? i + 1 != len : i + 1 < len && s[i + 1] != '/') {
            return MQTTC_ERR_BAD_FILTER;
        }
    }
    return mqttc_utf8_check(s, len);
}

bool mqttc_topic_matches(const char *filter, size_t filter_len, const char *name,
                         size_t name_len)
{
    size_t i = 0, j = 0;

    if (filter == NULL || name == NULL || filter_len == 0) {
        return false;
    }
    /* MQTT-4.7.2-1: wildcards in the first level do not match "$..." names. */
    if (name_len > 0 && name[0] == '$' && (filter[0] == '+' || filter[0] == '#')) {
        return false;
    }
    while (i < filter_len) {
        if (filter[i] == '#') {
            return true;
        }
        if (filter[i] == '+') {
            while (j < name_len && name[j] != '/') {
                j++; /* one level, possibly empty */
            }
            i++;
        } else if (j < name_len && filter[i] == name[j]) {
            i++;
            j++;
        } else {
            /* "a/#" also matches its parent "a" (MQTT-4.7.1-2). */
            return j == name_len && filter_len - i == 2 && filter[i] == '/' &&
                   filter[i + 1] == '#';
        }
    }
    return j == name_len;
}
