; Span query for C++ (capture names are fixed: see aixaudit/spans.py).
; Bodies are the whole `{...}` compound_statement; conditions are the expression inside the
; parentheses (the `value` of a condition_clause, so an `if (init; cond)` gives `cond`).

(function_definition body: (compound_statement) @span.function_body)
(lambda_expression body: (compound_statement) @span.function_body)

(if_statement consequence: (compound_statement) @span.block_body)
(else_clause (compound_statement) @span.block_body)
(for_statement body: (compound_statement) @span.block_body)
(for_range_loop body: (compound_statement) @span.block_body)
(while_statement body: (compound_statement) @span.block_body)
(do_statement body: (compound_statement) @span.block_body)
(try_statement body: (compound_statement) @span.block_body)
(catch_clause body: (compound_statement) @span.block_body)

(compound_statement) @span.block

(if_statement condition: (condition_clause value: (_) @span.condition))
(while_statement condition: (condition_clause value: (_) @span.condition))
(do_statement condition: (parenthesized_expression (_) @span.condition))
(for_statement condition: (_) @span.condition)
(conditional_expression condition: (_) @span.condition)

(call_expression arguments: (argument_list) @span.arguments) @span.call
(new_expression arguments: (argument_list) @span.arguments) @span.call

[
  (expression_statement)
  (declaration)
  (return_statement)
  (throw_statement)
  (break_statement)
  (continue_statement)
  (goto_statement)
  (if_statement)
  (for_statement)
  (for_range_loop)
  (while_statement)
  (do_statement)
  (switch_statement)
  (try_statement)
  (co_return_statement)
] @span.statement
