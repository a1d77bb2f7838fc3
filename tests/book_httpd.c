/*
 * tests/book_httpd.c — a tiny static file server for the browser test of the book.
 *
 *     book_httpd ROOT [PORT]
 *
 * Serves the files under ROOT on 127.0.0.1 (loopback only) at PORT, or at a free port when
 * PORT is 0 or absent, and prints "port N" on stdout once it listens. A page opened from
 * file:// may not fetch() other files, so tests/t_book.sh serves the HTML book this way and a
 * checker page (tests/book_check.html) fetches every link. GET and HEAD only; one thread per
 * connection; every request is logged on stderr as "STATUS PATH", so that the test can also
 * fail on any 404 the browser met. It exits by itself after 10 minutes, in case the test that
 * started it does not stop it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static const char *root;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *mime_type(const char *path) {
    static const char *types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".css", "text/css"},      {".js", "text/javascript"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},     {".jpg", "image/jpeg"},
        {".gif", "image/gif"},                 {".json", "application/json"}, {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void reply(int fd, int status, const char *reason, const char *type, long length, const char *path) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %ld\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, type, length);
    write_all(fd, head, (size_t)n);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%d %s\n", status, path);
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

static void error_reply(int fd, int status, const char *reason, const char *path) {
    reply(fd, status, reason, "text/plain", (long)strlen(reason), path);
    write_all(fd, reason, strlen(reason));
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode %XX in place and cut the query string; 0 when the path is unsafe or malformed. */
static int clean_path(char *path) {
    char *q = strpbrk(path, "?#");
    if (q) *q = '\0';
    char *out = path;
    for (char *p = path; *p; p++) {
        if (*p == '%') {
            int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
            if (lo < 0) return 0;
            *out++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    size_t len = (size_t)(out - path);
    if (strlen(path) != len) return 0; /* a %00 inside */
    if (path[0] != '/' || strstr(path, "/../") || strchr(path, '\\')) return 0;
    return !(len >= 3 && strcmp(path + len - 3, "/..") == 0);
}

static void serve(int fd) {
    char req[4096];
    size_t used = 0;
    while (used < sizeof req - 1) {
        ssize_t r = read(fd, req + used, sizeof req - 1 - used);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        used += (size_t)r;
        req[used] = '\0';
        if (strstr(req, "\r\n\r\n")) break;
    }
    req[used] = '\0';
    char method[16], target[2048];
    if (sscanf(req, "%15s %2047s", method, target) != 2) {
        error_reply(fd, 400, "Bad Request", "-");
        return;
    }
    int head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        error_reply(fd, 405, "Method Not Allowed", target);
        return;
    }
    if (!clean_path(target)) {
        error_reply(fd, 400, "Bad Request", target);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, target,
             target[strlen(target) - 1] == '/' ? "index.html" : "");
    int file = open(path, O_RDONLY);
    struct stat st;
    if (file < 0 || fstat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (file >= 0) close(file);
        error_reply(fd, 404, "Not Found", target);
        return;
    }
    reply(fd, 200, "OK", mime_type(path), (long)st.st_size, target);
    if (!head_only) {
        char buf[65536];
        ssize_t r;
        while ((r = read(file, buf, sizeof buf)) > 0)
            if (write_all(fd, buf, (size_t)r) != 0) break;
    }
    close(file);
}

static void *connection(void *arg) {
    int fd = (int)(intptr_t)arg;
    serve(fd);
    shutdown(fd, SHUT_WR);
    close(fd);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ROOT [PORT]\n", argv[0]);
        return 2;
    }
    root = argv[1];
    int port = argc > 2 ? atoi(argv[2]) : 0;
    signal(SIGPIPE, SIG_IGN);
    alarm(600);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 64) != 0 ||
        getsockname(s, (struct sockaddr *)&addr, &len) != 0) {
        perror("book_httpd");
        return 1;
    }
    printf("port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (;;) {
        int fd = accept(s, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            perror("book_httpd: accept");
            return 1;
        }
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        pthread_t t;
        if (pthread_create(&t, NULL, connection, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(t);
    }
}
