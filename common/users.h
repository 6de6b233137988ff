/* The users file and password checks (PBKDF2-HMAC-SHA256, libcrypto).
 *
 * File format, one user a line (contract):
 *   NAME:pbkdf2-sha256:ITERATIONS:SALT_HEX:HASH_HEX
 * NAME is 1..32 of [A-Za-z0-9_.-]; blank lines and lines starting with '#'
 * are ignored; a malformed line or a repeated name is an error.
 *
 * Loaded once at start, before any thread or fork, and read-only after:
 * chat-forked children share it copy-on-write, threads without a lock.
 */
#ifndef C10K_USERS_H
#define C10K_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USERS_DEFAULT_ITERATIONS 100000
#define USERS_MAX_PASSWORD 1024 /* longer passwords are refused unhashed */

struct user_record {
    char name[33];
    unsigned iterations;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t hash[64];
    size_t hash_len;
};

struct users;

/* Load FILE. On error returns NULL and writes a one-line reason (with the
 * line number) into err. Warns on stderr if the file is readable by others. */
struct users *users_load(const char *path, char *err, size_t errlen);
/* The seed's demo accounts coco, cc, aa with password 123456, from records
 * hashed once and kept in the source (never the password in clear). */
struct users *users_demo(void);
void users_free(struct users *u);
/* What a check for an unknown name hashes: the iterations and hash length
 * of the last loaded file's costliest record (iterations x 32-byte blocks). */
void users_unknown_work(unsigned *iterations, size_t *hash_len);
size_t users_count(const struct users *u);

/* NULL when there is no such user. */
const struct user_record *users_find(const struct users *u, const char *name);

/* True if `name` is 1..32 of [A-Za-z0-9_.-]. */
bool user_name_valid(const char *name, size_t len);

/* The slow part, meant to run off the event loop: PBKDF2 over the password
 * and a constant-time compare. rec == NULL runs the same work against a
 * dummy record and returns false, so an unknown name costs the same time
 * as a wrong password. */
bool password_check(const struct user_record *rec, const char *password, size_t len);

/* Make a record (random 16-byte salt) and format it as a file line with the
 * trailing newline. Returns 0 or -1. Used by `./lab adduser`. */
int user_record_make(struct user_record *rec, const char *name, const char *password,
                     unsigned iterations);
int user_record_format(const struct user_record *rec, char *out, size_t outlen);

#endif
