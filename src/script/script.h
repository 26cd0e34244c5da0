/* The application's Lua VMs: one per loop thread, loading lua/app.lua with the C binding areas
 * (json, db, pulse, auth, sse ...) and the embedded core helpers. A VM is replaced on SIGHUP; the old one lives
 * until the requests still running on it have finished. Requests run in pooled coroutines. */
#ifndef PULSE_SCRIPT_SCRIPT_H
#define PULSE_SCRIPT_SCRIPT_H

#include <lua.h>
#include <stddef.h>

#include "core/config.h"

#define PULSE_VM_COROUTINE_POOL 64

typedef struct pulse_vm_t {
    lua_State *L;
    int handle_ref; /* registry ref of app.handle */
    int refs;       /* requests running on this VM */
    int retired;    /* replaced by a reload: close once refs drops to 0 */
    int pool_n;
    struct {
        lua_State *co;
        int ref;
    } pool[PULSE_VM_COROUTINE_POOL];
} pulse_vm_t;

/* Creates a VM and loads the application. host is stored in the registry for the bindings
 * (the loop that owns the VM; NULL outside the server, e.g. the spec runner). Returns NULL with a
 * message (file and line of the failure) in err. */
pulse_vm_t *pulse_script_vm_create(const pulse_config_t *cfg, void *host, char *err, size_t errlen);
/* Marks the VM replaced; closes it now if nothing runs on it. */
void pulse_script_vm_retire(pulse_vm_t *vm);
/* A coroutine ready to run app.handle (pushed on it), counting as a reference to the VM. */
lua_State *pulse_script_vm_acquire(pulse_vm_t *vm, int *ref);
/* Gives back a finished coroutine (ok: it returned normally) and drops the reference. */
void pulse_script_vm_release(pulse_vm_t *vm, lua_State *co, int ref, int ok);

/* Opens the binding areas into package.loaded (json, db, pulse, auth) and the embedded modules into
 * package.preload. Used by the VM and by the spec runner. */
void pulse_script_open(lua_State *L, const pulse_config_t *cfg, void *host);
/* The host pointer and configuration given to pulse_script_open. */
void *pulse_script_host(lua_State *L);
const pulse_config_t *pulse_script_config(lua_State *L);

/* Per binding area (one file each in src/script/). Each pushes its module table. */
int pulse_script_open_json(lua_State *L);
int pulse_script_open_db(lua_State *L);
int pulse_script_open_pulse(lua_State *L);
int pulse_script_open_auth(lua_State *L);
int pulse_script_open_ratelimit(lua_State *L);
int pulse_script_open_ingest(lua_State *L);
int pulse_script_open_import(lua_State *L);
/* Reads the import plan table at idx (the Lua/jsonb contract, see src/script/import.c) into plan
 * and checks it (pulse_import_plan_check). Returns 0, or -1 with a message in err. Never raises;
 * the stack is left as it was. */
struct pulse_import_plan_t;
int pulse_import_plan_from_lua(lua_State *L, int idx, struct pulse_import_plan_t *plan, char *err, size_t errlen);
int pulse_script_open_sse(lua_State *L);
/* ml.score: one row scored with a stored churn model (src/script/ml.c). */
int pulse_script_open_ml(lua_State *L);

#endif
