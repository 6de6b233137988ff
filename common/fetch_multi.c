#include "fetch_multi.h"

CURLM *fetch_multi_new(curl_socket_callback on_socket, curl_multi_timer_callback on_timer,
                       void *userp)
{
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, userp);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, userp);
    return multi;
}

int fetch_multi_start(CURLM *multi, struct action *a)
{
    CURL *easy = action_fetch_easy(a);
    if (!easy)
        return -1;
    return curl_multi_add_handle(multi, easy) == CURLM_OK ? 0 : -1;
}

void fetch_multi_cancel(CURLM *multi, struct action *a)
{
    if (a->fetch.easy)
        curl_multi_remove_handle(multi, a->fetch.easy);
}

void fetch_multi_collect(CURLM *multi, void (*done)(struct action *a))
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result; /* msg dies with remove_handle */
        struct action *a = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&a);
        action_fetch_done(a, rc);
        curl_multi_remove_handle(multi, easy);
        done(a);
    }
}
