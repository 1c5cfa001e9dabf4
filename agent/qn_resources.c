/*  qn_resources - what the agent's machine has, and what each attempt
    gets of it.  See qn_resources.h.
*/
#include "qn_resources.h"
#include "qn_log.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_GPUS  64

//  An attempt's share: its GPUs (as a bit set over self->gpus) and cgroup
typedef struct {
    uint64_t gpus;
    char *cgroup;               //  the group's directory, or NULL
    uint64_t memory_mb;         //  its memory.max, for the OOM reason
} s_grant_t;

struct _qn_resources_t {
    uint32_t cpus;
    uint64_t memory_mb;
    Qanat__Gpu gpus [S_MAX_GPUS];
    Qanat__Gpu *gpu_ptrs [S_MAX_GPUS];
    size_t gpu_count;
    uint64_t gpus_taken;        //  bit i: gpus [i] belongs to a running attempt
    char *cgroup;               //  our delegated group (attempts go below), or NULL
    bool cpu_controller;        //  cpu.max can be set in it
    bool v1;                    //  cgroup is a v1 memory group (memory only)
    char *confinement;
    Qanat__Resources reported;
    zhashx_t *grants;           //  "run:task:attempt" -> s_grant_t
};

//  ---------------------------------------------------------------------
//  Small file helpers

//  The first line of a file into buf (newline cut); -1 if unreadable.
static int
s_read_line (const char *path, char *buf, size_t size)
{
    FILE *file = fopen (path, "re");
    if (!file)
        return -1;
    bool got = fgets (buf, (int) size, file) != NULL;
    fclose (file);
    if (!got)
        return -1;
    buf [strcspn (buf, "\n")] = 0;
    return 0;
}

//  Writes text to a cgroup interface file (O_CREAT changes nothing on
//  cgroupfs, where the file exists or cannot be made, and lets a plain
//  directory stand in for one in the tests).  0 or -1.
static int
s_write_text (const char *dir, const char *name, const char *text)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1)
        return -1;
    ssize_t wrote = write (fd, text, strlen (text));
    close (fd);
    return wrote == (ssize_t) strlen (text)? 0: -1;
}

int
qn_resources_parse_memory (const char *text, uint64_t *mb)
{
    char *end = NULL;
    errno = 0;
    if (!text || !isdigit ((unsigned char) *text))
        return -1;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || value == 0)
        return -1;
    uint64_t scale = 1;
    switch (*end) {
        case 0: break;
        case 'M': case 'm': end++; break;
        case 'G': case 'g': scale = 1024; end++; break;
        case 'T': case 't': scale = 1024 * 1024; end++; break;
        default: return -1;
    }
    if (*end == 'i' || *end == 'B')
        end++;
    if (*end || value > UINT64_MAX / scale / 1024)
        return -1;
    *mb = value * scale;
    return 0;
}

//  ---------------------------------------------------------------------
//  Detection

//  Where cgroup v2 is mounted, from /proc/self/mountinfo; malloc'd or NULL.
static char *
s_cgroup2_mount (void)
{
    FILE *file = fopen ("/proc/self/mountinfo", "re");
    if (!file)
        return NULL;
    char line [4096];
    char *mount = NULL;
    while (!mount && fgets (line, sizeof line, file)) {
        //  id parent major:minor root mountpoint options ... - fstype ...
        char *dash = strstr (line, " - cgroup2 ");
        if (!dash)
            continue;
        char *field = line;
        for (int i = 0; i < 4 && field; i++) {
            field = strchr (field, ' ');
            if (field)
                field++;
        }
        if (field)
            mount = strndup (field, strcspn (field, " "));
    }
    fclose (file);
    return mount;
}

//  Our own cgroup v2 group's directory (malloc'd) or NULL.
static char *
s_own_cgroup (const char *root)
{
    char line [4096];
    FILE *file = fopen ("/proc/self/cgroup", "re");
    if (!file)
        return NULL;
    char *dir = NULL;
    while (!dir && fgets (line, sizeof line, file)) {
        line [strcspn (line, "\n")] = 0;
        if (strncmp (line, "0::", 3) == 0)
            dir = zsys_sprintf ("%s%s", root, streq (line + 3, "/")? "": line + 3);
    }
    fclose (file);
    return dir;
}

//  Our group in the cgroup v1 memory hierarchy (malloc'd) or NULL: older
//  kernels and HPC distributions still mount the controllers there.  The
//  mount's root (field 4 of mountinfo) is cut from the path the group has
//  in /proc/self/cgroup, as a cgroup namespace shows it.
static char *
s_own_memory_cgroup_v1 (void)
{
    FILE *file = fopen ("/proc/self/mountinfo", "re");
    if (!file)
        return NULL;
    char line [4096], root [1024] = "", mount [1024] = "";
    while (!*mount && fgets (line, sizeof line, file)) {
        //  id parent major:minor root mountpoint options ... - cgroup source super
        char *dash = strstr (line, " - cgroup ");
        if (!dash)
            continue;
        char source [256] = "", super [512] = "";
        if (sscanf (dash + 10, "%255s %511s", source, super) != 2)
            continue;
        bool memory = false;
        char *state = NULL;
        for (char *option = strtok_r (super, ",", &state); option;
             option = strtok_r (NULL, ",", &state))
            memory |= streq (option, "memory");
        if (memory && sscanf (line, "%*s %*s %*s %1023s %1023s", root, mount) != 2)
            *mount = 0;
    }
    fclose (file);
    file = *mount? fopen ("/proc/self/cgroup", "re"): NULL;
    char *dir = NULL;
    while (file && !dir && fgets (line, sizeof line, file)) {
        line [strcspn (line, "\n")] = 0;
        char *controllers = strchr (line, ':');
        char *path = controllers? strchr (controllers + 1, ':'): NULL;
        if (!path)
            continue;
        *path++ = 0;
        bool memory = false;
        char *state = NULL;
        for (char *name = strtok_r (controllers + 1, ",", &state); name;
             name = strtok_r (NULL, ",", &state))
            memory |= streq (name, "memory");
        if (!memory)
            continue;
        size_t cut = streq (root, "/")? 0: strlen (root);
        if (cut && strncmp (path, root, cut) != 0)
            break;
        path += cut;
        dir = zsys_sprintf ("%s%s", mount, streq (path, "/")? "": path);
    }
    if (file)
        fclose (file);
    return dir;
}

//  The lowest limit of file (cpu.max or memory.max) on the way from dir up
//  to root: CPUs (rounded up) or MiB; 0 = none.
static uint64_t
s_cgroup_limit (const char *root, const char *dir, bool cpu)
{
    uint64_t lowest = 0;
    char *path = strdup (dir);
    while (path && strlen (path) >= strlen (root)) {
        char file [PATH_MAX], line [128];
        snprintf (file, sizeof file, "%s/%s", path, cpu? "cpu.max": "memory.max");
        if (s_read_line (file, line, sizeof line) == 0 && strncmp (line, "max", 3) != 0) {
            unsigned long long quota = 0, period = 100000;
            uint64_t limit = 0;
            if (cpu && sscanf (line, "%llu %llu", &quota, &period) >= 1 && period)
                limit = (quota + period - 1) / period;
            else
            if (!cpu && sscanf (line, "%llu", &quota) == 1)
                limit = quota / (1024 * 1024);
            if (limit && (!lowest || limit < lowest))
                lowest = limit;
        }
        char *slash = strrchr (path, '/');
        if (!slash || slash == path || strlen (path) == strlen (root))
            break;
        *slash = 0;
    }
    free (path);
    return lowest;
}

static uint64_t
s_mem_total_mb (void)
{
    FILE *file = fopen ("/proc/meminfo", "re");
    unsigned long long kb = 0;
    char line [256];
    while (file && fgets (line, sizeof line, file))
        if (sscanf (line, "MemTotal: %llu kB", &kb) == 1)
            break;
    if (file)
        fclose (file);
    return kb / 1024;
}

static void
s_add_gpu (qn_resources_t *self, uint32_t index, const char *uuid, const char *name,
           uint64_t memory_mb)
{
    if (self->gpu_count == S_MAX_GPUS)
        return;
    Qanat__Gpu *gpu = &self->gpus [self->gpu_count];
    qanat__gpu__init (gpu);
    gpu->index = index;
    gpu->uuid = strdup (uuid);
    gpu->name = strdup (name);
    gpu->memory_mb = memory_mb;
    self->gpu_ptrs [self->gpu_count++] = gpu;
}

static void
s_clear_gpus (qn_resources_t *self)
{
    for (size_t g = 0; g < self->gpu_count; g++) {
        free (self->gpus [g].uuid);
        free (self->gpus [g].name);
    }
    self->gpu_count = 0;
}

//  Trims spaces at both ends, in place.
static char *
s_trim (char *text)
{
    while (*text == ' ')
        text++;
    size_t length = strlen (text);
    while (length && (text [length - 1] == ' ' || text [length - 1] == '\r'))
        text [--length] = 0;
    return text;
}

//  True when program is an executable in PATH
static bool
s_in_path (const char *program)
{
    const char *path = getenv ("PATH");
    bool found = false;
    char *copy = strdup (path? path: "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r (copy, ":", &save); dir && !found; dir = strtok_r (NULL, ":", &save)) {
        char file [PATH_MAX];
        snprintf (file, sizeof file, "%s/%s", dir, program);
        found = access (file, X_OK) == 0;
    }
    free (copy);
    return found;
}

//  NVIDIA GPUs, from nvidia-smi when it is in PATH (within 30 s: a hung
//  driver must not hang the agent's start)
static void
s_detect_gpus (qn_resources_t *self)
{
    if (!s_in_path ("nvidia-smi"))
        return;
    FILE *pipe = popen (s_in_path ("timeout")
                        ? "timeout 30 nvidia-smi --query-gpu=index,uuid,name,memory.total "
                          "--format=csv,noheader 2>/dev/null"
                        : "nvidia-smi --query-gpu=index,uuid,name,memory.total "
                          "--format=csv,noheader 2>/dev/null", "re");
    if (!pipe)
        return;
    char line [1024];
    while (fgets (line, sizeof line, pipe)) {
        line [strcspn (line, "\n")] = 0;
        char *fields [4] = { NULL, NULL, NULL, NULL };
        char *save_line = NULL;
        int count = 0;
        for (char *field = strtok_r (line, ",", &save_line); field && count < 4;
             field = strtok_r (NULL, ",", &save_line))
            fields [count++] = s_trim (field);
        if (count < 3 || !isdigit ((unsigned char) *fields [0]))
            continue;
        uint64_t memory_mb = count == 4? strtoull (fields [3], NULL, 10): 0;
        s_add_gpu (self, (uint32_t) strtoul (fields [0], NULL, 10), fields [1], fields [2],
                   memory_mb);
    }
    int status = pclose (pipe);
    if (status != 0 && self->gpu_count == 0)
        qn_log (QN_LOG_WARNING, "agent", "nvidia-smi failed: no GPUs reported");
}

//  --gpus 0,1 (or "none"): GPUs by index, without a model.  0 or -1.
static int
s_gpus_override (qn_resources_t *self, const char *text, char **error_p)
{
    s_clear_gpus (self);
    if (!*text || streq (text, "none"))
        return 0;
    char *copy = strdup (text);
    char *save = NULL;
    int rc = 0;
    for (char *word = strtok_r (copy, ",", &save); word && rc == 0;
         word = strtok_r (NULL, ",", &save)) {
        char *end = NULL;
        unsigned long index = strtoul (word, &end, 10);
        if (!isdigit ((unsigned char) *word) || *end || index > 1023) {
            *error_p = zsys_sprintf ("--gpus: '%s' is not a GPU index (want e.g. 0,1)", word);
            rc = -1;
        }
        else
        if (self->gpu_count == S_MAX_GPUS) {
            *error_p = zsys_sprintf ("--gpus: at most %d GPUs", S_MAX_GPUS);
            rc = -1;
        }
        else
            s_add_gpu (self, (uint32_t) index, "", "", 0);
    }
    free (copy);
    return rc;
}

//  --resources cpus=4,memory=16G,gpus=2.  0 or -1.
static int
s_resources_override (qn_resources_t *self, const char *text, bool gpus_given, char **error_p)
{
    char *copy = strdup (text);
    char *save = NULL;
    int rc = 0;
    for (char *word = strtok_r (copy, ",", &save); word && rc == 0;
         word = strtok_r (NULL, ",", &save)) {
        char *value = strchr (word, '=');
        if (value)
            *value++ = 0;
        char *end = NULL;
        unsigned long number = value? strtoul (value, &end, 10): 0;
        bool whole = value && isdigit ((unsigned char) *value) && !*end;
        if (value && streq (word, "cpus") && whole && number > 0 && number <= 1000000)
            self->cpus = (uint32_t) number;
        else
        if (value && streq (word, "memory") && qn_resources_parse_memory (value, &self->memory_mb) == 0)
            ;
        else
        if (value && streq (word, "gpus") && whole && number <= S_MAX_GPUS) {
            if (gpus_given) {
                if (number != self->gpu_count) {
                    *error_p = zsys_sprintf ("--resources gpus=%lu but --gpus names %zu", number,
                                             self->gpu_count);
                    rc = -1;
                }
            }
            else {
                s_clear_gpus (self);
                for (uint32_t g = 0; g < number; g++)
                    s_add_gpu (self, g, "", "", 0);
            }
        }
        else {
            *error_p = zsys_sprintf ("--resources: '%s%s%s' is not cpus=N, memory=SIZE "
                                     "(512M, 16G) or gpus=N", word, value? "=": "",
                                     value? value: "");
            rc = -1;
        }
    }
    free (copy);
    return rc;
}

//  True when the space-separated list holds word
static bool
s_has_word (const char *list, const char *word)
{
    size_t length = strlen (word);
    for (const char *at = strstr (list, word); at; at = strstr (at + 1, word))
        if ((at == list || at [-1] == ' ' || at [-1] == '+')
        &&  (at [length] == ' ' || at [length] == 0))
            return true;
    return false;
}

//  Groups an earlier agent left in dir (removed only when empty)
static void
s_remove_stale_groups (const char *own)
{
    DIR *dir = opendir (own);
    struct dirent *entry;
    while (dir && (entry = readdir (dir)))
        if (strncmp (entry->d_name, "qanat-", 6) == 0) {
            char *path = zsys_sprintf ("%s/%s", own, entry->d_name);
            rmdir (path);
            free (path);
        }
    if (dir)
        closedir (dir);
}

//  Without a usable cgroup v2 group: the v1 memory hierarchy, when our
//  group there is writable.  A v1 group may hold processes and children
//  both, so the agent stays where it is.  Memory only: CPUs are not held
//  on v1, and the confinement says so.  Keeps the v2 reason otherwise.
static void
s_setup_cgroup_v1 (qn_resources_t *self)
{
    char *own = s_own_memory_cgroup_v1 ();
    char file [PATH_MAX];
    if (own)
        snprintf (file, sizeof file, "%s/memory.limit_in_bytes", own);
    if (!own || access (file, R_OK) == -1 || access (own, W_OK) == -1) {
        free (own);
        return;
    }
    s_remove_stale_groups (own);
    self->cgroup = own;
    self->v1 = true;
    free (self->confinement);
    self->confinement = strdup ("cgroup v1: memory only");
}

//  Our group, made ready for attempt groups below it: the agent moves to
//  a leaf of its own (a group with controllers for its children may hold
//  no process), and the memory (and cpu) controllers are enabled for the
//  children.  Sets self->cgroup, or self->confinement to why not.
static void
s_setup_cgroup (qn_resources_t *self, const char *root_given)
{
    char *root = root_given? strdup (root_given): s_cgroup2_mount ();
    char *own = root? s_own_cgroup (root): NULL;
    char controllers [256] = "", file [PATH_MAX];
    if (own)
        snprintf (file, sizeof file, "%s/cgroup.controllers", own);
    if (!root || !own)
        self->confinement = strdup ("none: no cgroup v2 hierarchy");
    else
    if (s_read_line (file, controllers, sizeof controllers) == -1
    ||  !s_has_word (controllers, "memory"))
        self->confinement = zsys_sprintf ("none: the memory controller is not available in "
                                          "the agent's cgroup %s", own);
    else
    if (access (own, W_OK) == -1)
        self->confinement = zsys_sprintf ("none: the agent's cgroup %s is not delegated to it "
                                          "(not writable)", own);
    if (self->confinement) {
        free (root);
        free (own);
        if (!root_given)            //  tests give a v2 tree of their own
            s_setup_cgroup_v1 (self);
        return;
    }
    char *leaf = zsys_sprintf ("%s/qanat-agent-%d", own, (int) getpid ());
    bool cpu = s_has_word (controllers, "cpu");
    const char *enable = cpu? "+memory +cpu": "+memory";
    if ((mkdir (leaf, 0755) == -1 && errno != EEXIST)
    ||  s_write_text (leaf, "cgroup.procs", "0\n") == -1
    ||  (s_write_text (own, "cgroup.subtree_control", enable) == -1
         && (!cpu || s_write_text (own, "cgroup.subtree_control", "+memory") == -1)))
        self->confinement = zsys_sprintf ("none: cannot set up the agent's cgroup %s: %s", own,
                                          strerror (errno));
    else {
        s_remove_stale_groups (own);
        char line [256] = "";
        snprintf (file, sizeof file, "%s/cgroup.subtree_control", own);
        s_read_line (file, line, sizeof line);
        self->cpu_controller = s_has_word (line, "cpu");
        self->cgroup = own;
        own = NULL;
        self->confinement = strdup ("cgroup");
    }
    free (leaf);
    free (root);
    free (own);
}

qn_resources_t *
qn_resources_new (const char *gpus, const char *resources, const char *cgroup_root,
                  char **error_p)
{
    qn_resources_t *self = (qn_resources_t *) zmalloc (sizeof (qn_resources_t));
    cpu_set_t set;
    CPU_ZERO (&set);
    self->cpus = sched_getaffinity (0, sizeof set, &set) == 0? (uint32_t) CPU_COUNT (&set)
                                                              : (uint32_t) sysconf (_SC_NPROCESSORS_ONLN);
    self->memory_mb = s_mem_total_mb ();
    char *root = cgroup_root? strdup (cgroup_root): s_cgroup2_mount ();
    char *own = root? s_own_cgroup (root): NULL;
    if (own) {
        uint64_t cpus = s_cgroup_limit (root, own, true);
        uint64_t memory = s_cgroup_limit (root, own, false);
        if (cpus && cpus < self->cpus)
            self->cpus = (uint32_t) cpus;
        if (memory && memory < self->memory_mb)
            self->memory_mb = memory;
    }
    free (root);
    free (own);
    if (!cgroup_root) {
        //  A v1 memory limit on our group (a container's, a batch job's)
        char *v1 = s_own_memory_cgroup_v1 ();
        char file [PATH_MAX], line [64];
        unsigned long long bytes = 0;
        if (v1)
            snprintf (file, sizeof file, "%s/memory.limit_in_bytes", v1);
        if (v1 && s_read_line (file, line, sizeof line) == 0
        &&  sscanf (line, "%llu", &bytes) == 1 && bytes < (1ULL << 60)
        &&  bytes / (1024 * 1024) < self->memory_mb)
            self->memory_mb = bytes / (1024 * 1024);
        free (v1);
    }
    if (!gpus)
        s_detect_gpus (self);
    self->grants = zhashx_new ();
    if ((gpus && s_gpus_override (self, gpus, error_p) == -1)
    ||  (resources && s_resources_override (self, resources, gpus != NULL, error_p) == -1)) {
        qn_resources_destroy (&self);
        return NULL;
    }
    s_setup_cgroup (self, cgroup_root);
    qanat__resources__init (&self->reported);
    return self;
}

void
qn_resources_destroy (qn_resources_t **self_p)
{
    qn_resources_t *self = *self_p;
    if (!self)
        return;
    s_clear_gpus (self);
    for (s_grant_t *grant = (s_grant_t *) zhashx_first (self->grants); grant;
         grant = (s_grant_t *) zhashx_next (self->grants)) {
        free (grant->cgroup);
        free (grant);
    }
    zhashx_destroy (&self->grants);
    free (self->cgroup);
    free (self->confinement);
    free (self);
    *self_p = NULL;
}

uint32_t
qn_resources_cpus (qn_resources_t *self)
{
    return self->cpus;
}

uint64_t
qn_resources_memory_mb (qn_resources_t *self)
{
    return self->memory_mb;
}

uint32_t
qn_resources_gpus (qn_resources_t *self)
{
    return (uint32_t) self->gpu_count;
}

const char *
qn_resources_confinement (qn_resources_t *self)
{
    return self->confinement;
}

void
qn_resources_register (qn_resources_t *self, Qanat__Register *reg)
{
    self->reported.cpus = self->cpus;
    self->reported.memory_mb = self->memory_mb;
    self->reported.gpus = (uint32_t) self->gpu_count;
    reg->resources = &self->reported;
    reg->gpus = self->gpu_ptrs;
    reg->n_gpus = self->gpu_count;
    reg->confinement = self->confinement;
}

//  ---------------------------------------------------------------------
//  Attempts

static char *
s_grant_key (const qn_attempt_key_t *key)
{
    return zsys_sprintf ("%" PRIu64 ":%u:%u", key->run_id, key->task_index, key->attempt);
}

//  The attempt's own group below ours, with its limits.  0 or -1.
static int
s_cgroup_make (qn_resources_t *self, const qn_attempt_key_t *key, const Qanat__Assign *assign,
               s_grant_t *grant, qn_resources_grant_t *out, char *error, size_t error_size)
{
    grant->cgroup = zsys_sprintf ("%s/qanat-%d-%" PRIu64 "-%u-%u", self->cgroup, (int) getpid (),
                                  key->run_id, key->task_index, key->attempt);
    char text [64];
    int rc = mkdir (grant->cgroup, 0755) == -1 && errno != EEXIST? -1: 0;
    if (rc == 0 && assign->memory_mb) {
        snprintf (text, sizeof text, "%" PRIu64 "\n", assign->memory_mb * 1024 * 1024);
        rc = s_write_text (grant->cgroup, self->v1? "memory.limit_in_bytes": "memory.max", text);
        //  No swap beyond it (the files are absent where swap is not accounted)
        if (self->v1)
            s_write_text (grant->cgroup, "memory.memsw.limit_in_bytes", text);
        else
            s_write_text (grant->cgroup, "memory.swap.max", "0\n");
        grant->memory_mb = assign->memory_mb;
    }
    if (rc == 0 && assign->cpus && self->cpu_controller) {
        snprintf (text, sizeof text, "%llu 100000\n", (unsigned long long) assign->cpus * 100000);
        rc = s_write_text (grant->cgroup, "cpu.max", text);
    }
    if (rc == 0) {
        char procs [PATH_MAX];
        snprintf (procs, sizeof procs, "%s/cgroup.procs", grant->cgroup);
        out->cgroup_fd = open (procs, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        rc = out->cgroup_fd == -1? -1: 0;
    }
    if (rc == -1) {
        snprintf (error, error_size, "cannot make the attempt's cgroup %s: %s", grant->cgroup,
                  strerror (errno));
        rmdir (grant->cgroup);
        zstr_free (&grant->cgroup);
    }
    return rc;
}

int
qn_resources_attempt_begin (qn_resources_t *self, const qn_attempt_key_t *key,
                            const Qanat__Assign *assign, qn_resources_grant_t *out,
                            char *error, size_t error_size)
{
    memset (out, 0, sizeof (*out));
    out->cgroup_fd = -1;
    out->gpus_visible = self->gpu_count > 0;
    size_t free_count = 0;
    for (size_t g = 0; g < self->gpu_count; g++)
        free_count += !(self->gpus_taken & (1ull << g));
    if (assign->gpus > free_count) {
        snprintf (error, error_size, "needs %u GPUs, %zu of %zu free on this agent (earlier "
                  "attempts still hold them)", assign->gpus, free_count, self->gpu_count);
        return -1;
    }
    s_grant_t *grant = (s_grant_t *) zmalloc (sizeof (s_grant_t));
    for (size_t g = 0, taken = 0; g < self->gpu_count && taken < assign->gpus; g++) {
        if (self->gpus_taken & (1ull << g))
            continue;
        grant->gpus |= 1ull << g;
        size_t used = strlen (out->gpus);
        snprintf (out->gpus + used, sizeof out->gpus - used, "%s%u", taken? ",": "",
                  self->gpus [g].index);
        taken++;
    }
    if (self->cgroup && (assign->memory_mb || (assign->cpus && !self->v1))
    &&  s_cgroup_make (self, key, assign, grant, out, error, error_size) == -1) {
        free (grant);
        return -1;
    }
    self->gpus_taken |= grant->gpus;
    char *name = s_grant_key (key);
    s_grant_t *old = (s_grant_t *) zhashx_lookup (self->grants, name);
    if (old) {
        self->gpus_taken &= ~old->gpus;
        self->gpus_taken |= grant->gpus;
        free (old->cgroup);
        free (old);
    }
    zhashx_update (self->grants, name, grant);
    free (name);
    return 0;
}

//  Kills every process left in a v1 group (v1 has no cgroup.kill)
static void
s_kill_procs (const char *dir)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/cgroup.procs", dir);
    FILE *file = fopen (path, "re");
    long pid;
    while (file && fscanf (file, "%ld", &pid) == 1)
        if (pid > 0)
            kill ((pid_t) pid, SIGKILL);
    if (file)
        fclose (file);
}

bool
qn_resources_attempt_end (qn_resources_t *self, const qn_attempt_key_t *key, char *reason,
                          size_t reason_size)
{
    char *name = s_grant_key (key);
    s_grant_t *grant = (s_grant_t *) zhashx_lookup (self->grants, name);
    bool oom = false;
    if (grant) {
        self->gpus_taken &= ~grant->gpus;
        if (grant->cgroup) {
            char file [PATH_MAX], line [256];
            snprintf (file, sizeof file, "%s/%s", grant->cgroup,
                      self->v1? "memory.oom_control": "memory.events");
            FILE *events = fopen (file, "re");
            unsigned long long kills = 0;
            while (events && fgets (line, sizeof line, events))
                if (sscanf (line, "oom_kill %llu", &kills) == 1)
                    break;
            if (events)
                fclose (events);
            if (kills && grant->memory_mb) {
                snprintf (reason, reason_size, "out of memory (limit %" PRIu64 " MiB)",
                          grant->memory_mb);
                oom = true;
            }
            //  What is left of it goes with the group
            if (self->v1)
                s_kill_procs (grant->cgroup);
            else
                s_write_text (grant->cgroup, "cgroup.kill", "1\n");
            for (int tries = 0; tries < 20 && rmdir (grant->cgroup) == -1 && errno == EBUSY; tries++)
                zclock_sleep (5);
            free (grant->cgroup);
        }
        free (grant);
        zhashx_delete (self->grants, name);
    }
    free (name);
    return oom;
}
