/*  fuzz_check - libFuzzer target: qn_check_new and qn_check_eval.
    See fuzz_common.h; built and run by tests/fuzz/run.sh. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (fz_check_one (data, size) < 0)
        abort ();       //  a broken invariant: libFuzzer keeps the input
    return 0;
}
