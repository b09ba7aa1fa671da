// What several node test files share: the tool schema the tool-call tests ask models to fill.
export const weatherSchema = {
  type: 'object',
  properties: {
    city: { type: 'string', enum: ['Paris', 'Tokyo'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
  },
  required: ['city', 'days'],
  additionalProperties: false,
};
