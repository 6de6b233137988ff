/* placeholder: replaced by the http mode */
#include "chatbench.h"
int run_http(const struct opts *o, struct result *r) { (void)o; (void)r; return -1; }
