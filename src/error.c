/* Error messages and names, generated from MQTTC_ERROR_LIST so they cannot
 * drift. One switch serves both: each case yields "MQTTC_ERR_<name>\0<message>",
 * which halves the code of two separate switches. */
#include <string.h>

#include "mqttc/error.h"

static const char *describe(int err)
{
    switch (err) {
#define MQTTC__ERR_CASE(name, value, msg) \
    case value:                           \
        return "MQTTC_ERR_" #name "\0" msg;
        MQTTC_ERROR_LIST(MQTTC__ERR_CASE)
#undef MQTTC__ERR_CASE
    default:
        return "MQTTC_ERR_UNKNOWN\0unknown error";
    }
}

const char *mqttc_strerror(int err)
{
    const char *s = describe(err > 0 ? 0 : err); /* counts and sizes mean success */
    return s + strlen(s) + 1;
}

const char *mqttc_errname(int err)
{
    return describe(err);
}
