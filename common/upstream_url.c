#include "upstream_url.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Host and port as curl reads `url` (port with the scheme's default filled
 * in); the caller frees both with curl_free. CURLUE_OK or curl's error. */
static CURLUcode host_and_port(const char *url, char **host, char **port)
{
    *host = *port = NULL;
    CURLU *u = curl_url();
    if (!u)
        return CURLUE_OUT_OF_MEMORY;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_HOST, host, 0);
    if (rc == CURLUE_OK)
        rc = curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT);
    curl_url_cleanup(u);
    if (rc != CURLUE_OK) {
        curl_free(*host);
        curl_free(*port);
        *host = *port = NULL;
    }
    return rc;
}

/* Does curl read prefix + word with the same host and port as the prefix? */
static bool same_authority(const char *prefix, const char *word, const char *host,
                           const char *port)
{
    char url[2048];
    if ((size_t)snprintf(url, sizeof url, "%s%s", prefix, word) >= sizeof url)
        return false;
    char *h, *p;
    if (host_and_port(url, &h, &p) != CURLUE_OK)
        return false;
    bool same = strcmp(h, host) == 0 && strcmp(p, port) == 0;
    curl_free(h);
    curl_free(p);
    return same;
}

int upstream_prefix_check(const char *prefix, char *err, size_t errlen)
{
    size_t skip = strncasecmp(prefix, "http://", 7) == 0    ? 7
                  : strncasecmp(prefix, "https://", 8) == 0 ? 8
                                                            : 0;
    if (!skip) {
        snprintf(err, errlen, "--upstream %s: must start with http:// or https://", prefix);
        return -1;
    }
    /* The rule itself, on the text: curl would also read "http://h" as
     * "http://h/", so its parts cannot tell whether the '/' was there. */
    size_t authority = strcspn(prefix + skip, "/?#");
    if (prefix[skip + authority] == '\0' || authority == 0) {
        snprintf(err, errlen,
                 "--upstream %s: the word would be appended to the host or port; end the "
                 "host with '/', '?' or '#' (e.g. %s/)",
                 prefix, prefix);
        return -1;
    }
    char *host, *port;
    CURLUcode rc = host_and_port(prefix, &host, &port);
    if (rc != CURLUE_OK) {
        snprintf(err, errlen, "--upstream %s: not a URL curl accepts (%s)", prefix,
                 curl_url_strerror(rc));
        return -1;
    }
    /* Belt and braces against a difference between the rule above and
     * curl's parser: words made of what curl_easy_escape lets through. */
    static const char *const probes[] = {"x", ".attacker.example", "80", "%40x", "~-._0"};
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof probes / sizeof probes[0]; i++)
        ok = same_authority(prefix, probes[i], host, port);
    if (!ok)
        snprintf(err, errlen, "--upstream %s: a word appended to it changes the host or port",
                 prefix);
    curl_free(host);
    curl_free(port);
    return ok ? 0 : -1;
}
