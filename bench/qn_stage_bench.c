/*  qn_stage_bench - what staging an input from an agent's blob cache costs.

    Stores a big file and a directory of small files in a blob store under
    $TMPDIR (else /tmp), then stages each into fresh directories, as an
    agent does for every attempt whose inputs are cached, and prints the
    median wall time of a staging:

        hit     the cache entry is as it was when verified
        check   the entry changed since (or the agent restarted): its
                bytes are hashed again before they are staged

        qn_stage_bench [--mb N] [--files N] [--rounds N]
*/
#include "qn_blobstore.h"
#include "qn_tree.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
s_compare (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y? -1: x > y;
}

//  Writes size bytes of a cheap pseudo-random stream to path
static int
s_write_file (const char *path, size_t size, unsigned seed)
{
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 1;
    uint64_t block [8192];
    while (size) {
        for (size_t i = 0; i < 8192; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            block [i] = state;
        }
        size_t n = size < sizeof block? size: sizeof block;
        if (fwrite (block, 1, n, file) != n)
            break;
        size -= n;
    }
    return fclose (file) == 0 && size == 0? 0: -1;
}

//  Forgets what staging may remember of the tree's blobs, as a change
//  to them would: their ctime moves (chmod to the mode they have)
static void
s_unsettle (qn_tree_t *tree, qn_blobstore_t *blobs)
{
    for (size_t i = 0; i < qn_tree_count (tree); i++) {
        char path [4096];
        if (qn_blobstore_path (blobs, qn_tree_entry (tree, i)->hash, path, sizeof path) == 0)
            chmod (path, 0444);
    }
}

//  Stages tree rounds times; the median seconds of one staging
static double
s_measure (qn_tree_t *tree, qn_blobstore_t *blobs, const char *root, size_t rounds,
           bool unsettle)
{
    double *took = (double *) calloc (rounds, sizeof (double));
    for (size_t r = 0; took && r < rounds; r++) {
        char stage [4096], command [4200];
        snprintf (stage, sizeof stage, "%s/stage-%zu", root, r);
        if (mkdir (stage, 0700) == -1) {
            fprintf (stderr, "cannot create %s: %s\n", stage, strerror (errno));
            exit (1);
        }
        if (unsettle)
            s_unsettle (tree, blobs);
        char *error = NULL;
        double start = s_now ();
        if (qn_tree_stage (tree, blobs, stage, "in", NULL, NULL, &error)) {
            fprintf (stderr, "staging failed: %s\n", error);
            exit (1);
        }
        took [r] = s_now () - start;
        snprintf (command, sizeof command, "rm -rf '%s'", stage);
        if (system (command) != 0)
            exit (1);
    }
    qsort (took, rounds, sizeof (double), s_compare);
    double median = took? took [rounds / 2]: 0;
    free (took);
    return median;
}

int
main (int argc, char *argv [])
{
    size_t mb = 256, files = 2000, rounds = 5;
    struct option options [] = {
        {"mb", required_argument, 0, 'm'},
        {"files", required_argument, 0, 'f'},
        {"rounds", required_argument, 0, 'r'},
        {0, 0, 0, 0}
    };
    int c;
    while ((c = getopt_long (argc, argv, "", options, NULL)) != -1) {
        size_t value = (size_t) strtoul (optarg? optarg: "0", NULL, 10);
        if (c == 'm')
            mb = value;
        else
        if (c == 'f')
            files = value;
        else
        if (c == 'r' && value)
            rounds = value;
        else {
            fprintf (stderr, "usage: qn_stage_bench [--mb N] [--files N] [--rounds N]\n");
            return 2;
        }
    }
    const char *tmp = getenv ("TMPDIR");
    char root [4096], path [4200];
    snprintf (root, sizeof root, "%s/qn-stage-bench-XXXXXX", tmp && *tmp? tmp: "/tmp");
    if (!mkdtemp (root))
        return 1;
    snprintf (path, sizeof path, "%s/blobs", root);
    qn_blobstore_t *blobs = qn_blobstore_new (path);
    snprintf (path, sizeof path, "%s/work", root);
    if (!blobs || mkdir (path, 0700) == -1)
        return 1;
    snprintf (path, sizeof path, "%s/work/dir", root);
    if (mkdir (path, 0700) == -1)
        return 1;
    for (size_t i = 0; i < files; i++) {
        char name [4300];
        snprintf (name, sizeof name, "%s/f%05zu", path, i);
        if (s_write_file (name, 4096, (unsigned) i + 1) == -1)
            return 1;
    }
    snprintf (path, sizeof path, "%s/work/big.bin", root);
    if (s_write_file (path, mb * 1000 * 1000, 0) == -1)
        return 1;
    snprintf (path, sizeof path, "%s/work", root);
    char *error = NULL;
    qn_tree_t *big = qn_tree_scan_store (path, "big.bin", blobs, &error);
    qn_tree_t *dir = big? qn_tree_scan_store (path, "dir", blobs, &error): NULL;
    if (!dir) {
        fprintf (stderr, "cannot store the inputs: %s\n", error);
        return 1;
    }
    printf ("staging from a blob cache in %s, median of %zu rounds\n", root, rounds);
    double hit = s_measure (big, blobs, root, rounds, false);
    double check = s_measure (big, blobs, root, rounds, true);
    printf ("one %zu MB file:      hit %8.1f ms   check %8.1f ms\n", mb, hit * 1e3, check * 1e3);
    hit = s_measure (dir, blobs, root, rounds, false);
    check = s_measure (dir, blobs, root, rounds, true);
    printf ("%zu files of 4 KiB:  hit %8.1f ms   check %8.1f ms\n", files, hit * 1e3,
            check * 1e3);
    qn_tree_destroy (&big);
    qn_tree_destroy (&dir);
    qn_blobstore_destroy (&blobs);
    char command [4200];
    snprintf (command, sizeof command, "rm -rf '%s'", root);
    return system (command) == 0? 0: 1;
}
