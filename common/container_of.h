/* The struct around an embedded member: the models embed the core's
 * struct conn (and the ring its request headers) in their own structs, and
 * callbacks hand back a pointer to the embedded part. One definition for
 * all of them, instead of the pointer arithmetic spelled out at each use. */
#ifndef C10K_CONTAINER_OF_H
#define C10K_CONTAINER_OF_H

#include <stddef.h>

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

#endif
