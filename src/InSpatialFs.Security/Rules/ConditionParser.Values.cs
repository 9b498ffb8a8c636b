namespace InSpatialFs.Security.Rules;

/// <summary>The right-hand sides of checks: strings, captures, val() and transformers, lists.</summary>
internal sealed partial class ConditionParser
{
    private Operand ParseScalarValue()
    {
        SkipBlank();
        int at = _pos;
        if (_pos >= _text.Length)
        {
            throw new ConditionSyntaxException("missing value after the operator", _pos);
        }

        if (TryTransformerOrVal(out FieldExpr? rhs))
        {
            return new FieldOperand(rhs!, at);
        }

        if (Peek() == '$')
        {
            _pos++;
            int stepAt = _pos;
            while (IsIdentChar(Peek()))
            {
                _pos++;
            }

            string step = _text[stepAt.._pos];
            if (step.Length == 0 || Peek() != '.')
            {
                throw new ConditionSyntaxException("a capture is $step.field", at);
            }

            _pos++;
            if (!TryFieldExpr(out FieldExpr? captured))
            {
                throw new ConditionSyntaxException($"a capture is $step.field, not '${step}.{Rest()}'", at);
            }

            return new CaptureOperand(step, captured!, at);
        }

        return ParseStringValue();
    }

    /// <summary>val(field) or a transformer (only where a value is expected on the right-hand side).</summary>
    private bool TryTransformerOrVal(out FieldExpr? field)
    {
        field = null;
        if (At("val("))
        {
            _pos += 4;
            SkipBlank();
            if (!TryFieldExpr(out field))
            {
                throw new ConditionSyntaxException("expected a field inside val(...)", _pos);
            }

            SkipBlank();
            if (Peek() != ')')
            {
                throw new ConditionSyntaxException("expected ')' closing val(", _pos);
            }

            _pos++;
            return true;
        }

        foreach (string t in Transformers)
        {
            if (At(t) && Peek(t.Length) == '(')
            {
                return TryFieldExpr(out field);
            }
        }

        return false;
    }

    private ValueOperand ParseStringValue()
    {
        SkipBlank();
        int at = _pos;
        if (Peek() is '"' or '\'')
        {
            return new ValueOperand(ReadQuoted(), true, at);
        }

        // Falco's bare string: no parentheses, quotes, blanks, '=' or ','.
        while (_pos < _text.Length && _text[_pos] is not ('(' or ')' or '"' or '\'' or '=' or ',') && !char.IsWhiteSpace(_text[_pos]))
        {
            _pos++;
        }

        if (_pos == at)
        {
            throw new ConditionSyntaxException(_pos >= _text.Length ? "missing value" : $"expected a value at '{Rest()}'", at);
        }

        return new ValueOperand(_text[at.._pos], false, at);
    }

    private string ReadQuoted()
    {
        int at = _pos;
        char delimiter = _text[_pos++];
        char prev = '\0';
        while (_pos < _text.Length)
        {
            char c = _text[_pos++];
            if (c == delimiter && prev != '\\')
            {
                return Unescape(_text[at.._pos], at);
            }

            prev = prev == '\\' && c == '\\' ? '\0' : c;
        }

        throw new ConditionSyntaxException("unterminated string", at);
    }

    private Operand ParseListValue()
    {
        SkipBlank();
        int at = _pos;
        if (Peek() == '(')
        {
            _pos++;
            var items = new List<ValueOperand>();
            SkipBlank();
            if (Peek() == ')')
            {
                _pos++;
                return new ListOperand(items, true, at);
            }

            while (true)
            {
                items.Add(ParseStringValue());
                SkipBlank();
                if (Peek() == ',')
                {
                    _pos++;
                    SkipBlank();
                    continue;
                }

                if (Peek() == ')')
                {
                    _pos++;
                    return new ListOperand(items, true, at);
                }

                throw new ConditionSyntaxException(_pos >= _text.Length ? "missing ')' closing the value list" : $"expected ',' or ')' in a value list at '{Rest()}'", _pos);
            }
        }

        if (TryTransformerOrVal(out FieldExpr? rhs))
        {
            return new FieldOperand(rhs!, at);
        }

        if (IsIdentStart(Peek()))
        {
            while (IsIdentChar(Peek()) || Peek() == '-')
            {
                _pos++;
            }

            return new ListOperand([new ValueOperand(_text[at.._pos], false, at)], false, at);
        }

        throw new ConditionSyntaxException($"expected a list '(...)' or a list name at '{Rest()}'", _pos);
    }
}
