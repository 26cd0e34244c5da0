/* The common-password blocklist (src/auth/common_passwords.txt) compiled into the binary by
 * scripts/embed_text.cmake, so the policy never depends on a file found at run time. Feed it to
 * pulse_password_blocklist_load (auth/setup.c does, at start-up). */
#ifndef PULSE_AUTH_COMMON_PASSWORDS_H
#define PULSE_AUTH_COMMON_PASSWORDS_H

#include <stddef.h>

extern const char pulse_common_passwords[]; /* NUL-terminated */
extern const size_t pulse_common_passwords_len;

#endif
