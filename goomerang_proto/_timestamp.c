/* The envelope's ``creation`` field in C: the compiled build's accelerator for codec.py.
 *
 * timestamp_field(ns) gives the bytes of Frame field 5, a google.protobuf.Timestamp
 * of ns // 10**9 seconds and ns % 10**9 nanos, in the canonical encoding that
 * codec.encode_timestamp writes in Python (tag 0x2a, length, then field 1 and
 * field 2 as varints, each omitted when 0: proto3 defaults, as Go writes them).
 * Built with the mypyc extensions (setup.py ACCELERATORS); codec.py falls back
 * to its Python encoder when this module is absent, and
 * tests/proto/test_timestamp_accel.py holds both to upb's serialization.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define NS_LIMIT ((long long)1 << 62) /* what codec.py hands over (year 2116) */

static unsigned char *
put_varint(unsigned char *p, uint64_t value)
{
    while (value >= 0x80) {
        *p++ = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    *p++ = (unsigned char)value;
    return p;
}

PyDoc_STRVAR(timestamp_field_doc,
"timestamp_field(ns) -> bytes\n\n"
"Frame field 5 (``creation``) for ``ns`` nanoseconds since the Unix epoch: the tag,\n"
"the length and a Timestamp of its seconds and nanos (b'' for 0). Raises ValueError\n"
"unless 0 <= ns < 2**62, TypeError when ``ns`` is not an int.");

static PyObject *
timestamp_field(PyObject *module, PyObject *arg)
{
    long long ns;
    uint64_t seconds, nanos;
    unsigned char buf[2 + 1 + 10 + 1 + 5];
    unsigned char *p;

    (void)module;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "timestamp_field() takes an int, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    ns = PyLong_AsLongLong(arg);
    if (ns == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear();
        ns = -1;
    }
    if (ns < 0 || ns >= NS_LIMIT) {
        PyErr_SetString(PyExc_ValueError, "timestamp_field: ns must be in [0, 2**62)");
        return NULL;
    }
    if (ns == 0) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    seconds = (uint64_t)ns / 1000000000u;
    nanos = (uint64_t)ns % 1000000000u;
    p = buf + 2;
    if (seconds) {
        *p++ = 0x08;
        p = put_varint(p, seconds);
    }
    if (nanos) {
        *p++ = 0x10;
        p = put_varint(p, nanos);
    }
    buf[0] = 0x2a;
    buf[1] = (unsigned char)(p - buf - 2); /* at most 16: a one-byte length */
    return PyBytes_FromStringAndSize((const char *)buf, p - buf);
}

static PyMethodDef methods[] = {
    {"timestamp_field", timestamp_field, METH_O, timestamp_field_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "goomerang_proto._timestamp",
    "The envelope's creation Timestamp field in C (the compiled build's accelerator for "
    "goomerang_proto.codec).",
    0,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__timestamp(void)
{
    return PyModuleDef_Init(&module_def);
}
