/* kiln — jansson loaded on first use (utils/lazylib): `kiln run` on a root
 * filesystem and a step's sandbox read no JSON, but linking jansson made every
 * command bind it at start-up. Callers take its constructors as infallible
 * (NULL is out-of-memory to them), so a missing library ends kiln at first
 * use naming it, as the loader did when it was linked. */
#include <jansson.h>
#include <stdarg.h>

#include "utils/lazylib.h"

typedef json_t J;

#define JANSSON_FUNCS(F, V)                                                                        \
    F(const char *, jansson_version_str, (void), (), 0)                                            \
    V(json_delete, (J * j), (j))                                                                   \
    F(J *, json_object, (void), (), 0)                                                             \
    F(J *, json_array, (void), (), 0)                                                              \
    F(J *, json_string, (const char *v), (v), 0)                                                   \
    F(J *, json_stringn, (const char *v, size_t n), (v, n), 0)                                     \
    F(J *, json_integer, (json_int_t v), (v), 0)                                                   \
    F(J *, json_real, (double v), (v), 0)                                                          \
    F(J *, json_true, (void), (), 0)                                                               \
    F(J *, json_false, (void), (), 0)                                                              \
    F(J *, json_null, (void), (), 0)                                                               \
    F(const char *, json_string_value, (const J *j), (j), 0)                                       \
    F(size_t, json_string_length, (const J *j), (j), 0)                                            \
    F(json_int_t, json_integer_value, (const J *j), (j), 0)                                        \
    F(double, json_number_value, (const J *j), (j), 0)                                             \
    F(double, json_real_value, (const J *j), (j), 0)                                               \
    F(size_t, json_object_size, (const J *o), (o), 0)                                              \
    F(J *, json_object_get, (const J *o, const char *k), (o, k), 0)                                \
    F(int, json_object_set_new, (J * o, const char *k, J *v), (o, k, v), 0)                        \
    F(int, json_object_del, (J * o, const char *k), (o, k), 0)                                     \
    F(int, json_object_update, (J * o, J * other), (o, other), 0)                                  \
    F(void *, json_object_iter, (J * o), (o), 0)                                                   \
    F(void *, json_object_iter_next, (J * o, void *it), (o, it), 0)                                \
    F(const char *, json_object_iter_key, (void *it), (it), 0)                                     \
    F(J *, json_object_iter_value, (void *it), (it), 0)                                            \
    F(void *, json_object_key_to_iter, (const char *k), (k), 0)                                    \
    F(size_t, json_array_size, (const J *a), (a), 0)                                               \
    F(J *, json_array_get, (const J *a, size_t i), (a, i), 0)                                      \
    F(int, json_array_set_new, (J * a, size_t i, J * v), (a, i, v), 0)                             \
    F(int, json_array_append_new, (J * a, J * v), (a, v), 0)                                       \
    F(int, json_array_remove, (J * a, size_t i), (a, i), 0)                                        \
    F(int, json_array_extend, (J * a, J * other), (a, other), 0)                                   \
    F(int, json_equal, (const J *a, const J *b), (a, b), 0)                                        \
    F(J *, json_deep_copy, (const J *j), (j), 0)                                                   \
    F(J *, json_loads, (const char *s, size_t flags, json_error_t *e), (s, flags, e), 0)           \
    F(J *, json_loadb, (const char *s, size_t n, size_t flags, json_error_t *e), (s, n, flags, e), \
      0)                                                                                           \
    F(J *, json_load_file, (const char *path, size_t flags, json_error_t *e), (path, flags, e), 0) \
    F(char *, json_dumps, (const J *j, size_t flags), (j, flags), 0)                               \
    F(int, json_dumpf, (const J *j, FILE *f, size_t flags), (j, f, flags), 0)

/* json_pack is variadic: forwarded through json_vpack_ex. */
#define JANSSON_HANDWRITTEN(F, V)                                                                  \
    F(J *, json_vpack_ex, (json_error_t * e, size_t flags, const char *fmt, va_list ap),           \
      (e, flags, fmt, ap), 0)

KILN_LAZYLIB_DEFINE_REQUIRED(JANSSON_FUNCS, JANSSON_HANDWRITTEN, "libjansson.so.4",
                             "to read and write JSON (images, jobs, the API)")
KILN_LAZYLIB_PRELOADER(jansson)

J *json_pack(const char *fmt, ...)
{
    va_list ap;
    J *j;

    lazy_require();
    va_start(ap, fmt);
    j = lazy_fn.json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    return j;
}
