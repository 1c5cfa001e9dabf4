/* placeholder */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
static void test_nothing (void **state) { (void) state; }
int main (void) { const struct CMUnitTest t[] = { cmocka_unit_test (test_nothing) }; return cmocka_run_group_tests (t, NULL, NULL); }
