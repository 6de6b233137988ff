/* placeholder: replaced by the ws mode */
#include "chatbench.h"
int run_ws(const struct opts *o, struct result *r) { (void)o; (void)r; return -1; }
