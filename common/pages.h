/* The HTML pages, embedded at build time from common/pages/. */
#ifndef C10K_PAGES_H
#define C10K_PAGES_H

#include <stddef.h>

struct page {
    const char *name;
    const char *data; /* NUL-terminated */
    size_t len;
};

/* "login.html", "chat.html"; NULL if absent. */
const struct page *pages_find(const char *name);

#endif
