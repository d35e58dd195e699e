/* placeholder: filled in by its module's author */
typedef int tn_placeholder_chunked_t;
