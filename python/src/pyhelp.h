/*
 * Helpers shared by the two extension modules (_memfabric, _memcache):
 * raising the package's status exceptions, turning Python objects into
 * memory ranges (buffer-protocol objects or raw integer addresses) and
 * keeping the buffer views alive while the GIL is released.
 *
 * Invariants: every Py_buffer taken through pyh_views_* is released by
 * pyh_views_release() on every path; a range made from an integer address
 * holds no view (the caller owns that memory).  Everything here is static
 * so that each module carries its own copy: the two modules link different
 * libraries and share no C state.
 */
#ifndef MF_PYTHON_PYHELP_H
#define MF_PYTHON_PYHELP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The call-through cast of METH_VARARGS | METH_KEYWORDS functions. */
#define PYH_KW(fn) ((PyCFunction)(void (*)(void))(fn))

typedef const char *(*pyh_name_fn)(int status);

/* The exception class (memfabric._errors.MfError or MmcError) and the
 * functions that name a status, set once at module init. */
typedef struct pyh_errors {
    PyObject *cls;
    pyh_name_fn name;
    pyh_name_fn str;
} pyh_errors_t;

static pyh_errors_t pyh_err;

static inline int pyh_errors_init(const char *cls_name, pyh_name_fn name,
                                  pyh_name_fn str)
{
    PyObject *mod = PyImport_ImportModule("memfabric._errors");

    if (mod == NULL) {
        return -1;
    }
    pyh_err.cls = PyObject_GetAttrString(mod, cls_name);
    Py_DECREF(mod);
    if (pyh_err.cls == NULL) {
        return -1;
    }
    pyh_err.name = name;
    pyh_err.str = str;
    return 0;
}

/* Raises the status exception for st; results (a list, may be NULL) is
 * attached as .results.  Always returns NULL. */
static inline PyObject *pyh_raise(int st, PyObject *results)
{
    PyObject *exc = PyObject_CallFunction(pyh_err.cls, "iss", st,
                                          pyh_err.name(st), pyh_err.str(st));

    if (exc == NULL) {
        return NULL;
    }
    if (results != NULL &&
        PyObject_SetAttrString(exc, "results", results) != 0) {
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_SetObject(pyh_err.cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* ------------------------------------------------------------ buffers */

/* The views taken for one call. */
typedef struct pyh_views {
    Py_buffer *v;
    size_t n;
    size_t cap;
} pyh_views_t;

static inline void pyh_views_release(pyh_views_t *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        PyBuffer_Release(&vs->v[i]);
    }
    PyMem_Free(vs->v);
    vs->v = NULL;
    vs->n = vs->cap = 0;
}

/* Takes a C-contiguous view of obj (writable when asked) and keeps it in
 * vs.  0, or -1 with an exception set. */
static inline int pyh_views_take(pyh_views_t *vs, PyObject *obj, int writable,
                                 void **addr_p, size_t *len_p)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);

    if (vs->n == vs->cap) {
        size_t cap = vs->cap == 0 ? 8 : 2 * vs->cap;
        Py_buffer *grown = PyMem_Realloc(vs->v, cap * sizeof(Py_buffer));

        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        vs->v = grown;
        vs->cap = cap;
    }
    if (PyObject_GetBuffer(obj, &vs->v[vs->n], flags) != 0) {
        return -1;
    }
    *addr_p = vs->v[vs->n].buf;
    *len_p = (size_t)vs->v[vs->n].len;
    vs->n++;
    return 0;
}

/* An integer address: a non-negative int.  0 or -1 (exception set). */
static inline int pyh_addr(PyObject *obj, uint64_t *addr_p)
{
    unsigned long long v;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "an address must be an int, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError,
                        "an address must be a non-negative 64-bit int");
        return -1;
    }
    *addr_p = (uint64_t)v;
    return 0;
}

static inline int pyh_size(PyObject *obj, size_t *size_p)
{
    size_t v;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "a size must be an int, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsSize_t(obj);
    if (v == (size_t)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "a size must be a non-negative int");
        return -1;
    }
    *size_p = v;
    return 0;
}

/*
 * One memory range: a buffer-protocol object (its whole contents), or a
 * 2-tuple (address: int, size: int).  0, or -1 with an exception set.
 */
static inline int pyh_range(pyh_views_t *vs, PyObject *obj, int writable,
                            void **addr_p, size_t *len_p)
{
    if (PyTuple_Check(obj)) {
        uint64_t addr;

        if (PyTuple_GET_SIZE(obj) != 2) {
            PyErr_SetString(PyExc_ValueError,
                            "a memory range tuple is (address, size)");
            return -1;
        }
        if (pyh_addr(PyTuple_GET_ITEM(obj, 0), &addr) != 0 ||
            pyh_size(PyTuple_GET_ITEM(obj, 1), len_p) != 0) {
            return -1;
        }
        *addr_p = (void *)(uintptr_t)addr;
        return 0;
    }
    if (PyLong_Check(obj)) {
        PyErr_SetString(PyExc_TypeError,
                        "a raw address needs a size: pass (address, size)");
        return -1;
    }
    return pyh_views_take(vs, obj, writable, addr_p, len_p);
}

/* A key: str (UTF-8) or bytes, without NUL.  Borrowed pointer valid while
 * obj lives.  0 or -1. */
static inline int pyh_key(PyObject *obj, const char **key_p)
{
    const char *s;
    Py_ssize_t len;

    if (PyUnicode_Check(obj)) {
        s = PyUnicode_AsUTF8AndSize(obj, &len);
        if (s == NULL) {
            return -1;
        }
    } else if (PyBytes_Check(obj)) {
        s = PyBytes_AS_STRING(obj);
        len = PyBytes_GET_SIZE(obj);
    } else {
        PyErr_Format(PyExc_TypeError, "a key must be str or bytes, not %s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (strlen(s) != (size_t)len) {
        PyErr_SetString(PyExc_ValueError, "a key must not contain NUL");
        return -1;
    }
    *key_p = s;
    return 0;
}

/* A tuple holding the items of a sequence (so that no other thread can
 * change them while the GIL is released).  New reference or NULL. */
static inline PyObject *pyh_tuple(PyObject *seq, const char *what)
{
    if (PyUnicode_Check(seq) || PyBytes_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s must be a sequence, not %s", what,
                     Py_TYPE(seq)->tp_name);
        return NULL;
    }
    return PySequence_Tuple(seq);
}

/* A list of ints from count C ints.  New reference or NULL. */
static inline PyObject *pyh_int_list(const int *v, size_t count)
{
    PyObject *list = PyList_New((Py_ssize_t)count);

    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        PyObject *item = PyLong_FromLong(v[i]);

        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* The text form of a setting's value: str(), but booleans as
 * "true" / "false".  New reference or NULL. */
static inline PyObject *pyh_setting_str(PyObject *value)
{
    if (PyBool_Check(value)) {
        return PyUnicode_FromString(value == Py_True ? "true" : "false");
    }
    return PyObject_Str(value);
}

/* Text written by a function that prints to a FILE.  New str or NULL. */
static inline PyObject *pyh_capture(void (*fn)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    PyObject *res;

    if (f == NULL) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    fn(f);
    fclose(f);
    res = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace");
    free(text);
    return res;
}

#endif /* MF_PYTHON_PYHELP_H */
