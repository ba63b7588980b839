/* mqttc: the command-line client. `mqttc pub` and `mqttc sub` take
 * mosquitto_pub's and mosquitto_sub's flags (cli_pub.c, cli_sub.c);
 * `mqttc bench` measures a broker and the library (cli_bench.c). */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"

#ifndef MQTTC_CLI_VERSION
#define MQTTC_CLI_VERSION "unknown"
#endif

static void usage(void)
{
    printf(
            "mqttc %s: an MQTT 3.1.1 client for the command line.\n"
            "\n"
            "Usage: mqttc pub [options]   publish a message (the flags of mosquitto_pub)\n"
            "       mqttc sub [options]   subscribe and print messages (the flags of mosquitto_sub)\n"
            "       mqttc bench [options] measure: N publishers and M subscribers, or a\n"
            "                             connection storm (--connections K)\n"
            "       mqttc pub --help, mqttc sub --help, mqttc bench --help   the options\n"
            "       mqttc --help | --version\n",
            MQTTC_CLI_VERSION);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (cmd == NULL) {
        fprintf(stderr, "Error: no command given: use 'mqttc pub', 'mqttc sub' or 'mqttc bench' (see 'mqttc --help')\n");
        return CLI_EXIT_ERROR;
    }
    if (strcmp(cmd, "pub") == 0) {
        return cli_pub_main(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "sub") == 0) {
        return cli_sub_main(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("mqttc %s\n", MQTTC_CLI_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "bench") == 0) {
        return cli_bench_main(argc - 2, argv + 2);
    }
    fprintf(stderr, "Error: unknown command '%s': expected pub, sub or bench (see 'mqttc --help')\n",
            cmd);
    return CLI_EXIT_ERROR;
}
