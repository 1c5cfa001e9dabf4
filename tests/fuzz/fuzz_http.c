/*  fuzz_http - libFuzzer target: qn_http_api_decode, the HTTP API's
    request decoding.  See fuzz_http.h; built and run by tests/fuzz/run.sh. */
#include "fuzz_http.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (fz_http_one (data, size) < 0)
        abort ();       //  a broken invariant: libFuzzer keeps the input
    return 0;
}
