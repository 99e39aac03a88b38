/* kiln — the current element's path of an expat parse (see xmlpath.h). */
#include "utils/xmlpath.h"

#include <string.h>

const char *kiln_xml_local_name(const char *name)
{
    const char *sep = strrchr(name, KILN_XML_NS_SEP);
    return sep ? sep + 1 : name;
}

int kiln_xml_path_push(kiln_xml_path_t *p, const char *name)
{
    const char *local = kiln_xml_local_name(name);
    size_t base, ln = strlen(local);

    if (p->elements >= KILN_XML_PATH_MAX_ELEMENTS)
        return KILN_XML_PATH_TOO_MANY;
    if (p->depth >= KILN_XML_PATH_MAX_DEPTH)
        return KILN_XML_PATH_TOO_DEEP;
    p->elements++;
    base = p->len[p->depth];
    p->depth++;
    /* the '/' before a child, the name and the NUL must fit */
    if (p->overflow_depth == 0 && base + (base ? 1 : 0) + ln + 1 > sizeof(p->path))
        p->overflow_depth = p->depth;
    if (p->overflow_depth) {
        p->len[p->depth] = base;
        return 0;
    }
    if (base)
        p->path[base++] = '/';
    memcpy(p->path + base, local, ln + 1);
    p->len[p->depth] = base + ln;
    return 0;
}

void kiln_xml_path_pop(kiln_xml_path_t *p)
{
    if (p->depth == 0)
        return;
    if (p->overflow_depth == p->depth)
        p->overflow_depth = 0;
    p->depth--;
    p->path[p->len[p->depth]] = '\0';
}

static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    ((kiln_xml_path_t *)data)->refuse(data, true);
}

static void XMLCALL on_entity_decl(void *data, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid;
    (void)pubid, (void)notation;
    ((kiln_xml_path_t *)data)->refuse(data, false);
}

void kiln_xml_refuse_dtd(XML_Parser parser, kiln_xml_path_t *p,
                         void (*refuse)(void *data, bool doctype))
{
    p->refuse = refuse;
    XML_SetStartDoctypeDeclHandler(parser, on_doctype);
    XML_SetEntityDeclHandler(parser, on_entity_decl);
    XML_SetParamEntityParsing(parser, XML_PARAM_ENTITY_PARSING_NEVER);
}
