/*  fuzz_manifest - libFuzzer target: qn_tree_parse_manifest, and writing
    back what parses.  See fuzz_common.h; built and run by tests/fuzz/run.sh. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (fz_manifest_one (data, size) < 0)
        abort ();       //  a broken invariant: libFuzzer keeps the input
    return 0;
}
