/* placeholder: replaced by the hold mode */
#include "chatbench.h"
int run_hold(const struct opts *o, struct result *r) { (void)o; (void)r; return -1; }
