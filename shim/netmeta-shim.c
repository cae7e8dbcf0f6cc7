/*
 * netmeta-shim: the executable a container runtime calls as `netmeta`, `sriov` or `fixipam`
 * (one binary, named by argv[0]). It forwards the CNI call (CNI_* env + stdin) to the node
 * daemon over its unix socket and prints the answer, so a call costs ~1 ms of process start
 * instead of ~14 ms for a Python interpreter. Same protocol and behaviour as cni/shim.py
 * (the wire format is cni/wire.py); when the daemon does not answer, `mode` decides:
 *   auto (default): exec the Python entry (in-process engine) with the same argv and stdin;
 *   daemon: answer CNI error 11 (try again later); thin: always the Python entry.
 * Without CNI_COMMAND (the operator CLI) the Python entry runs directly.
 * Time budget (the numbers and their reasons are in cni/shim.py): the request carries the
 * deadline now + NETMETA_SHIM_TIMEOUT (default 90 s, below the kubelet's 2-minute CRI timeout),
 * or the earlier NETMETA_DEADLINE inherited from the daemon operation that exec'd our caller;
 * the answer is awaited GRACE s past it, then the fallback (cni/shim.py) bounds its lock wait.
 * Build: cc -O2 -static -DFALLBACK_DIR='"/path/with/python/entries"' -o netmeta netmeta-shim.c
 * (static: `netmeta install` copies it onto hosts whose glibc may be older than ours)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef FALLBACK_DIR
#define FALLBACK_DIR "/opt/cni/bin/.netmeta"
#endif
#define DEFAULT_SOCKET "/run/netmeta/netmeta.sock"
#define MAX_IN (4 * 1024 * 1024)

static const char *FORWARD[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
                                "CNI_ARGS", "CNI_PATH", "NETMETA_OP", NULL};
#define N_FORWARD 7
#define BUDGET 90.0
#define GRACE 2.0
static const char VERSION_REPLY[] =
    "{\"cniVersion\": \"1.1.0\", \"supportedVersions\": [\"0.1.0\", \"0.2.0\", \"0.3.0\", \"0.3.1\", \"0.4.0\", \"1.0.0\", \"1.1.0\"]}\n";

/* cni/invoke.py runs our own delegate types in-process when the executable carries this */
__attribute__((used)) static const char MARKER[] = "netmeta-plugin";

static char *in_buf; static size_t in_len;

static void write_all(int fd, const char *p, size_t n) {
    while (n) { ssize_t w = write(fd, p, n); if (w <= 0) { if (errno == EINTR) continue; return; } p += w; n -= w; }
}

static double now_s(void) {
    struct timespec t; clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* end: a CLOCK_REALTIME time after which reading gives up (0 = none) */
static int read_all(int fd, char **out, size_t *len, size_t max, double end) {
    size_t cap = 65536, n = 0; char *b = malloc(cap);
    if (!b) return -1;
    for (;;) {
        if (n == cap) { if (cap >= max) { free(b); return -1; } cap *= 2; char *nb = realloc(b, cap); if (!nb) { free(b); return -1; } b = nb; }
        if (end > 0) {
            double left = end - now_s();
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int pr = left > 0 ? poll(&p, 1, (int)(left * 1000) + 1) : 0;
            if (pr < 0 && errno == EINTR) continue;
            if (pr <= 0) { free(b); return -1; }   /* no answer by the deadline */
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0) { if (errno == EINTR) continue; free(b); return -1; }
        if (r == 0) break;
        n += r;
    }
    *out = b; *len = n; return 0;
}

/* the string value of a TOP-LEVEL "key" of the config, without a JSON parser: depth and
 * strings are tracked, so a delegate's own "mode" (macvlan, ipvlan) never shadows ours */
static int config_string(const char *key, char *dst, size_t cap) {
    size_t klen = strlen(key), i = 0;
    int depth = 0;
    while (i < in_len) {
        char c = in_buf[i];
        if (c == '"') {
            size_t j = i + 1;
            while (j < in_len && in_buf[j] != '"') j += in_buf[j] == '\\' ? 2 : 1;
            if (j >= in_len) return 0;
            if (depth == 1 && j - i - 1 == klen && !memcmp(in_buf + i + 1, key, klen)) {
                size_t k = j + 1;
                while (k < in_len && (in_buf[k] == ' ' || in_buf[k] == '\t' || in_buf[k] == '\r' || in_buf[k] == '\n')) k++;
                if (k < in_len && in_buf[k] == ':') {
                    k++;
                    while (k < in_len && (in_buf[k] == ' ' || in_buf[k] == '\t' || in_buf[k] == '\r' || in_buf[k] == '\n')) k++;
                    if (k >= in_len || in_buf[k] != '"') return 0;
                    size_t e = k + 1;
                    while (e < in_len && in_buf[e] != '"') e += in_buf[e] == '\\' ? 2 : 1;
                    if (e >= in_len || e - k - 1 >= cap) return 0;
                    memcpy(dst, in_buf + k + 1, e - k - 1);
                    dst[e - k - 1] = 0;
                    return 1;
                }
            }
            i = j + 1;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        i++;
    }
    return 0;
}

static void fallback(const char *plugin, char **argv) {
    /* the daemon was tried already: the Python entry goes straight in-process */
    if (getenv("CNI_COMMAND")) setenv("NETMETA_MODE", "thin", 1);
    /* the Python entry reads the same stdin: hand it over through a memfd */
    int fd = memfd_create("netmeta-stdin", 0);
    if (fd >= 0) { write_all(fd, in_buf, in_len); lseek(fd, 0, SEEK_SET); dup2(fd, 0); close(fd); }
    /* the Python entries: `.netmeta/` beside this executable (where `netmeta install` puts
     * them), else the directory this binary was built for (a `make dev` venv) */
    char path[4096], self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    int err = ENOENT;
    if (n > 0) {
        self[n] = 0;
        snprintf(path, sizeof path, "%s/.netmeta/%s", dirname(self), plugin);
        argv[0] = path;
        execv(path, argv);
        err = errno;
    }
    if (err == ENOENT) {
        snprintf(path, sizeof path, "%s/%s", FALLBACK_DIR, plugin);
        argv[0] = path;
        execv(path, argv);
        err = errno;
    }
    fprintf(stderr, "netmeta shim: cannot run %s: %s\n", path, strerror(err));
    if (getenv("CNI_COMMAND")) {   /* still answer in the protocol: code 5, I/O failure */
        char v[32] = "1.1.0", out[2048];
        config_string("cniVersion", v, sizeof v);
        int n = snprintf(out, sizeof out, "{\"cniVersion\": \"%s\", \"code\": 5, \"msg\": \"netmeta: the daemon "
                         "did not answer and the in-process fallback cannot run\", \"details\": \"%s: %s\"}\n",
                         v, path, strerror(err));
        if (n > 0) write_all(1, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
    }
    exit(1);
}

static int try_again(const char *msg) {
    char v[32] = "1.1.0", out[1024];
    config_string("cniVersion", v, sizeof v);
    int n = snprintf(out, sizeof out, "{\"cniVersion\": \"%s\", \"code\": 11, \"msg\": \"%s\", \"details\": "
                     "\"start the daemon (netmeta daemon) or set mode auto to run in-process\"}\n", v, msg);
    write_all(1, out, n);
    fprintf(stderr, "netmeta: %s\n", msg);
    return 1;
}

/* 1 = answered (exit code in *rc), 0 = no daemon, -1 = daemon broke off */
static int forward(const char *sock_path, const char *plugin, int *rc) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (s < 0 || strlen(sock_path) >= sizeof a.sun_path) return 0;
    strcpy(a.sun_path, sock_path);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { close(s); return 0; }
    const char *t = getenv("NETMETA_SHIM_TIMEOUT"), *inh = getenv("NETMETA_DEADLINE");
    double budget = t ? atof(t) : BUDGET, deadline = now_s() + (budget > 0 ? budget : BUDGET);
    if (inh && atof(inh) > 0 && atof(inh) < deadline) deadline = atof(inh);
    char dl[32]; snprintf(dl, sizeof dl, "%.3f", deadline);
    /* env block: KEY=VALUE\0KEY=VALUE... */
    size_t cap = 4096, n = 0; char *env = malloc(cap);
    const char *fault = getenv("NETMETA_DAEMON_FAULT");   /* tests: crash the daemon, not us */
    for (int i = 0; i < N_FORWARD + 3; i++) {
        const char *k = i < N_FORWARD ? FORWARD[i] : i == N_FORWARD ? "NETMETA_PLUGIN"
                      : i == N_FORWARD + 1 ? "NETMETA_DEADLINE" : "NETMETA_FAULT";
        const char *v = i < N_FORWARD ? getenv(k) : i == N_FORWARD ? plugin : i == N_FORWARD + 1 ? dl : fault;
        if (!v || !env) continue;
        size_t need = strlen(k) + strlen(v) + 2;
        while (n + need > cap) { cap *= 2; env = realloc(env, cap); if (!env) break; }
        if (!env) break;
        if (n) env[n++] = 0;
        n += sprintf(env + n, "%s=%s", k, v);
    }
    if (!env) { close(s); return 0; }
    char head[64]; int h = snprintf(head, sizeof head, "NM1 %zu %zu\n", n, in_len);
    write_all(s, head, h); write_all(s, env, n); write_all(s, in_buf, in_len);
    free(env);
    char *ans; size_t alen;
    if (read_all(s, &ans, &alen, MAX_IN + 64, deadline + GRACE) < 0 || alen == 0) { close(s); return -1; }
    close(s);
    char *nl = memchr(ans, '\n', alen < 64 ? alen : 64);
    long code, olen;
    if (!nl || sscanf(ans, "%ld %ld", &code, &olen) != 2 || olen < 0 || (size_t)olen != alen - (nl + 1 - ans)) return -1;
    write_all(1, nl + 1, olen);
    *rc = (int)code;
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    char *name = basename(strdup(argv[0]));
    const char *plugin = !strcmp(name, "sriov") ? "sriov" : !strcmp(name, "fixipam") ? "fixipam" : "netmeta";
    const char *cmd = getenv("CNI_COMMAND");
    in_buf = ""; in_len = 0;
    if (!cmd) { fallback(plugin, argv); }
    if (!isatty(0) && read_all(0, &in_buf, &in_len, MAX_IN, 0) < 0) { in_buf = ""; in_len = 0; }
    if (!strcmp(cmd, "VERSION")) { write_all(1, VERSION_REPLY, sizeof VERSION_REPLY - 1); return 0; }
    char mode[16] = "auto", sock[108] = DEFAULT_SOCKET;
    if (!strcmp(plugin, "netmeta")) config_string("mode", mode, sizeof mode);
    const char *env_mode = getenv("NETMETA_MODE");
    if (!strcmp(mode, "thin") || (env_mode && !strcmp(env_mode, "thin"))) fallback(plugin, argv);
    if (!config_string("socketPath", sock, sizeof sock) && getenv("NETMETA_SOCKET"))
        snprintf(sock, sizeof sock, "%s", getenv("NETMETA_SOCKET"));
    int rc = 0, r = forward(sock, plugin, &rc);
    if (r == 1) return rc;
    if (!strcmp(mode, "daemon"))
        return try_again(r == 0 ? "the netmeta daemon is not running" : "the netmeta daemon broke off the request");
    if (r < 0) fprintf(stderr, "netmeta shim: daemon at %s broke off: running in-process\n", sock);
    fallback(plugin, argv);
    return 1;
}
