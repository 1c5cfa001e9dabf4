/*  fuzz_client_socket - libFuzzer target: a sequence of messages on the
    coordinator's clients' socket, through qn_coordinator_feed.
    See fuzz_coordinator.h; built and run by tests/fuzz/run.sh. */
#include "fuzz_coordinator.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (fz_client_socket_one (data, size) < 0)
        abort ();       //  the coordinator stopped answering
    return 0;
}
