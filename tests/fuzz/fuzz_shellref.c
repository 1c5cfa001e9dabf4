/*  fuzz_shellref - libFuzzer target: qn_shellref_rewrite under a real
    /bin/sh.  See fuzz_shellref.h; built and run by tests/fuzz/run.sh. */
#include "fuzz_shellref.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (fz_shellref_one (data, size) < 0)
        abort ();       //  a broken invariant: libFuzzer keeps the input
    return 0;
}
