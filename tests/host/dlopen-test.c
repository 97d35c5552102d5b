/* dlopen-test NAME...: dlopen(NAME, RTLD_NOW) each name given and print "ok NAME" or
 * "FAIL NAME: <dlerror()>", one line each. Exit status: the number of failures (255 at most).
 * tests/host/provision.sh builds it with the host's gcc into the glibc test image, whose loader
 * has no ld.so.cache: names resolve through the loader's default directories only. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    int failures = 0;
    for (int i = 1; i < argc; i++) {
        if (dlopen(argv[i], RTLD_NOW) != NULL) {
            printf("ok %s\n", argv[i]);
        } else {
            printf("FAIL %s: %s\n", argv[i], dlerror());
            failures++;
        }
    }
    return failures > 255 ? 255 : failures;
}
