/* placeholder: replaced by the login helper */
#include "chatbench.h"
int chatbench_login(const struct opts *o, char *cookie, size_t len) { (void)o; (void)cookie; (void)len; return -1; }
